package bmcsim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAdminChangesFaultsAtRunTime(t *testing.T) {
	sim := New("admin", "pw", 0, "s1", "s2")
	bmc := httptest.NewServer(sim.Handler())
	defer bmc.Close()
	admin := httptest.NewServer(sim.AdminHandler())
	defer admin.Close()

	get := func(system string) int {
		req, _ := http.NewRequest("GET", bmc.URL+"/redfish/v1/Systems/"+system, nil)
		req.SetBasicAuth("admin", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, admin.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if c := get("s1"); c != 200 {
		t.Fatalf("s1 before any fault: %d", c)
	}
	if c, b := do("PUT", "/faults/s1", "auth-fail"); c != 200 {
		t.Fatalf("PUT auth-fail: %d %s", c, b)
	}
	if c := get("s1"); c != 401 {
		t.Fatalf("s1 with auth-fail: %d, want 401", c)
	}
	if c := get("s2"); c != 200 {
		t.Fatalf("s2 answers while s1 fails auth: %d", c)
	}
	if c, b := do("PUT", "/faults/s1", "fail5xx=2, slow=10ms"); c != 200 {
		t.Fatalf("PUT fail5xx: %d %s", c, b)
	}
	if c, b := do("GET", "/faults", ""); c != 200 || !strings.Contains(b, `"s1":"slow=10ms,fail5xx=2"`) {
		t.Fatalf("GET /faults: %d %s", c, b)
	}
	for i, want := range []int{503, 503, 200} {
		if c := get("s1"); c != want {
			t.Fatalf("s1 request %d with fail5xx=2: %d, want %d", i+1, c, want)
		}
	}
	if c, _ := do("DELETE", "/faults/s1", ""); c != 200 {
		t.Fatalf("DELETE: %d", c)
	}
	if f, _ := sim.FaultsOf("s1"); f != (Faults{}) {
		t.Fatalf("faults after DELETE: %+v", f)
	}
	if c, _ := do("PUT", "/faults/nope", "hang"); c != 404 {
		t.Fatalf("unknown system: %d, want 404", c)
	}
	if c, b := do("PUT", "/faults/s1", "slow=forever"); c != 400 || !strings.Contains(b, "slow") {
		t.Fatalf("bad fault: %d %s", c, b)
	}
	if f, err := ParseFaults("hang,slow=1s,conflict409,fail5xx=3,never-off,auth-fail"); err != nil ||
		f != (Faults{Hang: true, Slow: time.Second, Conflict409: true, Fail5xx: 3, NeverOff: true, AuthFail: true}) {
		t.Fatalf("ParseFaults: %+v %v", f, err)
	}
}
