package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/alerts"
	"github.com/fencedhq/fenced/pkg/clock"
)

func alertStore(t *testing.T) *alerts.Store {
	t.Helper()
	s, err := alerts.New(alerts.Config{Clock: clock.NewFake(time.Unix(0, 0)), Log: zerolog.Nop(),
		Rules: map[string]alerts.Rule{"NodeDown": {Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const notification = `{"version":"4","status":"firing","receiver":"fenced","alerts":[
	{"status":"firing","labels":{"alertname":"NodeDown","host":"cmp-001"},"startsAt":"2026-01-15T01:00:00Z"},
	{"status":"firing","labels":{"alertname":"Watchdog"}}]}`

func TestPostAlerts(t *testing.T) {
	store := alertStore(t)
	tokens := map[string]Identity{"am-token-0123456789": {Name: "alertmanager", Role: Alerts},
		"viewer-token-0123456": {Name: "v", Role: Viewer}, "operator-token-01234": {Name: "o", Role: Operator}}
	srv := httptest.NewServer(New(backend(), Reads{Alerts: store}, tokens))
	defer srv.Close()
	post := func(token, ctype, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/alerts", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for _, tc := range []struct {
		name, token, ctype, body string
		code                     int
		field                    string
	}{
		{"no token", "", "application/json", notification, 401, ""},
		{"viewer may not post alerts", "viewer-token-0123456", "application/json", notification, 403, ""},
		{"not JSON content", "am-token-0123456789", "text/plain", notification, 415, "Content-Type"},
		{"malformed: the field is named", "am-token-0123456789", "application/json",
			`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"NodeDown","host":"cmp-002"}},{"status":"maybe","labels":{}}]}`, 400, "alerts[1].status"},
		{"wrong version", "am-token-0123456789", "application/json", `{"version":"2","status":"firing","alerts":[]}`, 400, "version"},
	} {
		code, out := post(tc.token, tc.ctype, tc.body)
		if code != tc.code || (tc.field != "" && out["field"] != tc.field) {
			t.Errorf("%s: %d %v, want %d field %q", tc.name, code, out, tc.code, tc.field)
		}
	}
	if n := len(store.Samples(time.Unix(0, 0), nil)); n != 0 {
		t.Fatalf("refused notifications left %d alerts held", n)
	}
	code, out := post("am-token-0123456789", "application/json; charset=utf-8", notification)
	if code != 200 || out["accepted"] != 1.0 || out["ignored"].(map[string]any)["no_host"] != 1.0 {
		t.Fatalf("%d %v", code, out)
	}
	if code, _ := post("operator-token-01234", "application/json", notification); code != 200 {
		t.Fatalf("operator: %d", code)
	}
	smp := store.Samples(time.Unix(0, 0), nil)
	if len(smp) != 1 || smp[0].Host != "cmp-001" || smp[0].Alert.Name != "NodeDown" {
		t.Fatalf("held %+v", smp)
	}
	// an alerts token reads nothing
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/hosts", nil)
	req.Header.Set("Authorization", "Bearer am-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("alerts token reading hosts: %d", resp.StatusCode)
	}
}

func TestPostAlertsOff(t *testing.T) {
	srv := httptest.NewServer(New(backend(), Reads{}, nil))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/v1/alerts", "application/json", strings.NewReader(notification))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("%d", resp.StatusCode)
	}
}

func TestAlertsRoleInTokensFile(t *testing.T) {
	path := t.TempDir() + "/tokens"
	if err := os.WriteFile(path, []byte("alerts alertmanager am-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	toks, err := ReadTokens(path)
	if err != nil || toks["am-token-0123456789"].Role != Alerts {
		t.Fatalf("%v %+v", err, toks)
	}
}
