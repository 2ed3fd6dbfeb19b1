package nova

import (
	"context"
	"net/http"
	"regexp"
	"sync"

	"github.com/fencedhq/fenced/internal/obs"
)

// Every call to Nova carries a global request id (X-OpenStack-Request-ID,
// "req-" and a UUID): the request id of the fenced action it serves, so
// that Nova's own log lines name the same id as fenced's audit record and
// log line. Nova answers with its own request id, which goes on the call's
// span and log line (openstack_request_id).

const requestIDHeader = "X-OpenStack-Request-ID"

// globalRequestID is the form OpenStack's request-id middleware accepts.
var globalRequestID = regexp.MustCompile(`^req-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$`)

// requestIDs travel in a call's context to the transport.
type requestIDs struct {
	global string
	mu     sync.Mutex
	nova   string // the last answer's x-openstack-request-id
}

func (r *requestIDs) answered() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nova
}

type requestIDsKey struct{}

// withRequestIDs returns ctx whose Nova requests send global (a fresh id
// when global is not in OpenStack's form) and keep Nova's answer.
func withRequestIDs(ctx context.Context, global string) (context.Context, *requestIDs) {
	if !globalRequestID.MatchString(global) {
		global = obs.NewRequestID()
	}
	r := &requestIDs{global: global}
	return context.WithValue(ctx, requestIDsKey{}, r), r
}

// requestIDTransport sends the global request id and keeps Nova's.
type requestIDTransport struct{ next http.RoundTripper }

func (t requestIDTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r, _ := req.Context().Value(requestIDsKey{}).(*requestIDs)
	if r != nil {
		req = req.Clone(req.Context())
		req.Header.Set(requestIDHeader, r.global)
	}
	resp, err := t.next.RoundTrip(req)
	if r != nil && resp != nil {
		if id := resp.Header.Get(requestIDHeader); id != "" {
			r.mu.Lock()
			r.nova = id
			r.mu.Unlock()
		}
	}
	return resp, err
}

// tracedHTTPClient is hc with its transport wrapped.
func tracedHTTPClient(hc http.Client) http.Client {
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = requestIDTransport{next: next}
	return hc
}
