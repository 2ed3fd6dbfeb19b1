package nova

import (
	"context"
	"testing"
	"time"
)

// TestServicesLeaveOutHostNamesFencedCannotUse: a compute whose host name
// carries an escape sequence is not managed (and not passed on to the API,
// audit and terminals); a good one is.
func TestServicesLeaveOutHostNamesFencedCannotUse(t *testing.T) {
	f, c, _ := newFakeNova(t, time.Now)
	ctx := context.Background()
	if svcs, err := c.Services(ctx); err != nil || len(svcs) != 1 || svcs[0].Host != "cn1" {
		t.Fatalf("%+v %v", svcs, err)
	}
	f.mu.Lock()
	f.svc["host"] = "cn1\x1b[2K approve ok carol"
	f.mu.Unlock()
	if svcs, err := c.Services(ctx); err != nil || len(svcs) != 0 {
		t.Fatalf("a host name with an escape sequence was kept: %+v %v", svcs, err)
	}
}
