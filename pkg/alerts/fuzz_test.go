package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
)

// FuzzParse: any bytes give a payload or a *FieldError of bounded length;
// a payload refused leaves the store as it was, and one accepted applies
// without panicking and re-encodes to a payload Parse accepts again.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/alertmanager-v4.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"version":"4","status":"resolved","alerts":[{"status":"resolved","labels":{"alertname":"NodeDown","host":"h"}}]}`))
	f.Add([]byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Steal","host":"h"},"annotations":{"v":"1e309"}}]}`))
	f.Add([]byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{}}, 7]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := New(Config{Clock: clock.NewFake(time.Unix(0, 0)), Rules: map[string]Rule{
			"NodeDown": {Weight: 1}, "Steal": {Signal: "cpu_steal_pct", ValueFrom: "annotation:v"}, "HostStealHigh": {Signal: "cpu_steal_pct", ValueFrom: "label:x"}}})
		if err != nil {
			t.Fatal(err)
		}
		s.held["seed"] = held{host: "x", until: time.Unix(1e9, 0)}
		p, err := Parse(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("not a FieldError: %T %v", err, err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			if _, err := s.Receive(context.Background(), data); err == nil || len(s.held) != 1 {
				t.Fatalf("a refused payload changed the store: %v, %d held", err, len(s.held))
			}
			return
		}
		res := s.Apply(context.Background(), p)
		n := res.Accepted
		for _, c := range res.Ignored {
			n += c
		}
		if n != len(p.Alerts) {
			t.Fatalf("%d alerts, %d accounted for", len(p.Alerts), n)
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Fatalf("re-encoded payload refused: %v\n%s", err, b)
		}
	})
}
