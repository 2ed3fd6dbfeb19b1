package alerts

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseAlertmanagerPayload(t *testing.T) {
	body, err := os.ReadFile("testdata/alertmanager-v4.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "4" || p.Status != Firing || len(p.Alerts) != 2 {
		t.Fatalf("%+v", p)
	}
	a := p.Alerts[0]
	if a.Status != Firing || a.Labels["host"] != "cmp-002" || a.Annotations["steal_pct"] != "41.5" || a.StartsAt.IsZero() || !a.EndsAt.IsZero() && a.EndsAt.Year() != 1 {
		t.Fatalf("first alert: %+v", a)
	}
	if p.Alerts[1].Status != Resolved || p.Alerts[1].EndsAt.Minute() != 13 {
		t.Fatalf("second alert: %+v", p.Alerts[1])
	}
}

// TestParseRefusesNamingTheField: every malformed payload is refused with
// a *FieldError naming where it is wrong.
func TestParseRefusesNamingTheField(t *testing.T) {
	ok := `{"status":"firing","labels":{"alertname":"A","host":"h"}}`
	for _, tc := range []struct {
		body, field, msg string
	}{
		{``, "", "empty body"},
		{`{`, "", "not JSON"},
		{`[]`, "", "want a JSON object"},
		{`{"version":"4","status":"firing","alerts":[]} {}`, "", "exactly one"},
		{`{"status":"firing","alerts":[]}`, "version", "required"},
		{`{"version":4,"status":"firing","alerts":[]}`, "version", "want a string"},
		{`{"version":"3","status":"firing","alerts":[]}`, "version", `"3"`},
		{`{"version":"4","alerts":[]}`, "status", "required"},
		{`{"version":"4","status":"burning","alerts":[]}`, "status", "firing or resolved"},
		{`{"version":"4","status":"firing"}`, "alerts", "required"},
		{`{"version":"4","status":"firing","alerts":{}}`, "alerts", "want a list"},
		{`{"version":"4","status":"firing","alerts":[` + ok + `,"x"]}`, "alerts[1]", "want a JSON object"},
		{`{"version":"4","status":"firing","alerts":[` + ok + `,{"labels":{}}]}`, "alerts[1].status", "required"},
		{`{"version":"4","status":"firing","alerts":[{"status":"on","labels":{}}]}`, "alerts[0].status", "firing or resolved"},
		{`{"version":"4","status":"firing","alerts":[{"status":"firing"}]}`, "alerts[0].labels", "required"},
		{`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":null}]}`, "alerts[0].labels", "required"},
		{`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"host":7}}]}`, "alerts[0].labels", "want a string"},
		{`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{},"annotations":[]}]}`, "alerts[0].annotations", "want a JSON object"},
		{`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{},"startsAt":"yesterday"}]}`, "alerts[0].startsAt", "RFC 3339"},
		{`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{},"endsAt":12}]}`, "alerts[0].endsAt", "want a string"},
	} {
		_, err := Parse([]byte(tc.body))
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: err = %v, want a FieldError", tc.body, err)
			continue
		}
		if fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("%s: field %q msg %q, want field %q and %q", tc.body, fe.Field, fe.Msg, tc.field, tc.msg)
		}
	}
}

func TestParseKeepsEchoesShort(t *testing.T) {
	_, err := Parse([]byte(`{"version":"` + strings.Repeat("\x1b[31m", 1000) + `"}`))
	if err == nil || len(err.Error()) > 200 || strings.Contains(err.Error(), "\x1b") {
		t.Fatalf("err = %q", err)
	}
}
