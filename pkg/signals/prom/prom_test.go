package prom

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

var now = time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)

func fakeProm(t *testing.T, answer func(q string) (int, string)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		code, body := answer(r.URL.Query().Get("query"))
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSamplesFromVectors(t *testing.T) {
	srv := fakeProm(t, func(q string) (int, string) {
		if strings.Contains(q, "steal") {
			return 200, `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"instance":"10.0.0.17:9100"},"value":[1768440000,"31.5"]},
				{"metric":{"instance":"cmp-002:9100"},"value":[1768440000,"2"]},
				{"metric":{"instance":"cmp-003:9100"},"value":[1768440000,"NaN"]},
				{"metric":{"job":"x"},"value":[1768440000,"5"]}]}}`
		}
		return 400, `{"status":"error","errorType":"bad_data","error":"parse error"}`
	})
	c, err := New(Config{URL: srv.URL, Queries: map[signals.Name]string{signals.CPUSteal: "steal", signals.IOLatency: "broken"},
		HostMap: map[string]string{"10.0.0.17:9100": "cmp-017"}})
	if err != nil {
		t.Fatal(err)
	}
	smp, err := c.Collect(context.Background(), now)
	if err == nil || !strings.Contains(err.Error(), "io_latency_p99_ms") || !strings.Contains(err.Error(), "parse error") {
		t.Fatalf("a failing query must be reported by signal: %v", err)
	}
	if len(smp) != 2 || smp[0].Host != "cmp-017" || smp[0].Value != 31.5 || smp[1].Host != "cmp-002" || !smp[0].At.Equal(now) {
		t.Fatalf("samples %+v", smp)
	}
}

func TestDownPrometheusYieldsNothing(t *testing.T) {
	srv := fakeProm(t, nil)
	url := srv.URL
	srv.Close()
	c, _ := New(Config{URL: url, Timeout: 200 * time.Millisecond})
	smp, err := c.Collect(context.Background(), now)
	if err == nil || len(smp) != 0 {
		t.Fatalf("down Prometheus: %d samples, err %v", len(smp), err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "prometheus:9090"},
		{URL: "http://p:9090", Queries: map[signals.Name]string{"cpu_stolen": "x"}},
		{URL: "http://p:9090", Queries: map[signals.Name]string{signals.CPUSteal: " "}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}
