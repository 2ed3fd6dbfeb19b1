package nova

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRequestIDsGoToNovaAndBack(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("X-OpenStack-Request-ID")
		w.Header().Set("X-OpenStack-Request-ID", "req-nova-local")
	}))
	defer srv.Close()
	hc := tracedHTTPClient(http.Client{})
	const action = "req-0b6f3c1e-2a4d-4c8e-9f10-3d2b1a0c9e87"
	for _, tc := range []struct{ give, want string }{{action, action}, {"req-not-a-uuid", ""}, {"", ""}} {
		ctx, ids := withRequestIDs(context.Background(), tc.give)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got != ids.global || !globalRequestID.MatchString(got) || (tc.want != "" && got != tc.want) {
			t.Errorf("given %q: Nova saw global request id %q (ours %q)", tc.give, got, ids.global)
		}
		if ids.answered() != "req-nova-local" {
			t.Errorf("Nova's request id %q not kept", ids.answered())
		}
	}
}
