package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/fencing/redfish/bmcsim"
)

// fuzzBMC answers the requests the fencer makes with the bodies of the
// current fuzz input: the service root, the Systems collection, the system
// and the reset action's answer.
type fuzzBMC struct {
	mu                         sync.Mutex
	root, systems, system, ans []byte
	code                       int
}

func (b *fuzzBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/redfish/v1", "/redfish/v1/":
		_, _ = w.Write(b.root)
	case "/redfish/v1/Systems":
		_, _ = w.Write(b.systems)
	case "/redfish/v1/Systems/cmp-017":
		_, _ = w.Write(b.system)
	case "/redfish/v1/Systems/cmp-017/Actions/ComputerSystem.Reset":
		w.WriteHeader(b.code)
		_, _ = w.Write(b.ans)
	default:
		http.NotFound(w, r)
	}
}

var (
	fuzzOnce sync.Once
	fuzzBMCs *fuzzBMC
	fuzzURL  string
)

// simBody is what the BMC simulator answers at path (the fuzz seeds).
func simBody(t testing.TB, srv *httptest.Server, path string) []byte {
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.SetBasicAuth("admin", "s3cret")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// FuzzBMCResponses: whatever a BMC answers, the fencer neither panics nor
// reports a power state the BMC did not give, and counts a power off as
// done only when the BMC's system reads Off.
func FuzzBMCResponses(f *testing.F) {
	s := bmcsim.New("admin", "s3cret", 0, "cmp-017")
	srv := httptest.NewServer(s.Handler())
	root, systems, system := simBody(f, srv, "/redfish/v1/"), simBody(f, srv, "/redfish/v1/Systems"), simBody(f, srv, "/redfish/v1/Systems/cmp-017")
	srv.Close()
	f.Add(root, systems, system, uint16(204), []byte{})
	f.Add(root, systems, []byte(`{"Id":"cmp-017","PowerState":"Off"}`), uint16(409), []byte(`{"error":{"code":"Base.1.8.ActionNotSupported","message":"already off"}}`))
	f.Add(root, systems, system, uint16(503), []byte(`{"error":{}}`))
	f.Add(root, []byte(`{"Members":[{"@odata.id":"/redfish/v1/Systems/cmp-017"},{"@odata.id":"/redfish/v1/Systems/cmp-017"}]}`), []byte(`{"Id":"cmp-017","PowerState":"banana","Actions":{"#ComputerSystem.Reset":{"target":"/redfish/v1/Systems/cmp-017/Actions/ComputerSystem.Reset","ResetType@Redfish.AllowableValues":[]}}}`), uint16(200), []byte(`null`))
	f.Add([]byte(`{}`), []byte(`[]`), []byte(`"x"`), uint16(0), []byte(`{`))
	fuzzOnce.Do(func() {
		fuzzBMCs = &fuzzBMC{}
		fuzzURL = httptest.NewServer(fuzzBMCs).URL // lives as long as the fuzzing process
	})
	f.Fuzz(func(t *testing.T, root, systems, system []byte, code uint16, ans []byte) {
		c := int(code)
		if c < 100 || c > 599 {
			c = 500
		}
		fuzzBMCs.mu.Lock()
		fuzzBMCs.root, fuzzBMCs.systems, fuzzBMCs.system, fuzzBMCs.code, fuzzBMCs.ans = root, systems, system, c, ans
		fuzzBMCs.mu.Unlock()
		tg := map[string]Target{"cmp-017": {Host: "cmp-017", Endpoint: fuzzURL, SystemID: "cmp-017", Username: "admin", Password: "s3cret", BasicAuth: true}}
		fe, err := New(Config{Targets: tg, Attempt: 500 * time.Millisecond, Deadline: 50 * time.Millisecond, Backoff: time.Millisecond,
			VerifyTimeout: 20 * time.Millisecond, Poll: 5 * time.Millisecond, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		// the power states the BMC's bodies give, read as gofish reads them
		// (JSON, field names case-insensitive, the last of duplicate keys
		// wins); a collection may name any of them as the system
		given := map[string]bool{}
		for _, b := range [][]byte{root, systems, system} {
			var says struct{ PowerState string }
			if json.Unmarshal(b, &says) == nil {
				given[says.PowerState] = true
			}
		}
		// every call is bounded by the fencer's own timeouts (tens of
		// milliseconds here): whatever the BMC answers, it cannot hold it
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				buf := make([]byte, 1<<20)
				panic("the fencer did not return within 20 s:\n" + string(buf[:runtime.Stack(buf, true)]))
			}
		}()
		ctx := context.Background()
		ps, err := fe.PowerState(ctx, "cmp-017")
		switch {
		case err != nil && ps != fencing.Unknown:
			t.Fatalf("power state %q with an error: %v", ps, err)
		case err == nil && !known(ps):
			t.Fatalf("power state %q is not a Redfish power state, yet no error", ps)
		case err == nil && !given[string(ps)]:
			t.Fatalf("power state %q, which no body of the BMC gives (%v)", ps, given)
		}
		err = fe.PowerOff(ctx, "cmp-017")
		if err == nil && !given[string(fencing.Off)] {
			t.Fatalf("power off counted as done, but no body of the BMC says Off (%v)", given)
		}
		if err != nil && errors.Is(err, fencing.ErrUnknownHost) {
			t.Fatalf("the configured host is unknown: %v", err)
		}
	})
}
