package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/fencedhq/fenced/internal/escape"
	"github.com/fencedhq/fenced/pkg/alerts"
)

// Alerts is the role of Alertmanager's token: it may post alerts
// (POST /api/v1/alerts) and nothing else, not even read. An operator token
// may post alerts too.
const Alerts Role = "alerts"

// AlertSink takes Alertmanager's webhook notifications (pkg/alerts): it
// applies one whole, or refuses it with an *alerts.FieldError and changes
// nothing.
type AlertSink interface {
	Receive(ctx context.Context, body []byte) (alerts.Result, error)
}

// MaxAlertsBody bounds a notification's body (Alertmanager's max_alerts
// keeps it smaller).
const MaxAlertsBody = 4 << 20

// AlertsReply is the body of a 200 answer to POST /api/v1/alerts.
type AlertsReply struct {
	alerts.Result
}

// postAlerts serves POST /api/v1/alerts: Alertmanager's webhook_config
// posts here, with a bearer token of role alerts. A malformed notification
// is refused with 400 naming the field and changes nothing; alerts without
// a mapping or a host are counted and ignored (200).
func (s *Server) postAlerts(w http.ResponseWriter, r *http.Request) {
	if s.r.Alerts == nil {
		writeJSON(w, http.StatusNotFound, Error{Error: "inbound alerts are off: add an alerts: section to the run config"})
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
		writeJSON(w, http.StatusForbidden, Error{Error: fmt.Sprintf("write from another origin (%s) refused", escape.Excerpt(o, 100))})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, Error{Error: "Content-Type must be application/json", Field: "Content-Type"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAlertsBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, Error{Error: fmt.Sprintf("body over %d bytes: lower max_alerts in Alertmanager's webhook_config", MaxAlertsBody)})
			return
		}
		writeJSON(w, http.StatusBadRequest, Error{Error: "reading the body: " + short(err)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := s.r.Alerts.Receive(ctx, body)
	if err != nil {
		var fe *alerts.FieldError
		if errors.As(err, &fe) {
			writeJSON(w, http.StatusBadRequest, Error{Error: short(err), Field: fe.Field})
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, Error{Error: short(err)})
		return
	}
	writeJSON(w, http.StatusOK, AlertsReply{res})
}

// authAlerts lets a token of role alerts or operator through (any caller
// on a dev API without tokens).
func (s *Server) authAlerts(h http.HandlerFunc) http.HandlerFunc {
	return s.authBy(func(role Role) string {
		if role == Alerts || role == Operator {
			return ""
		}
		return fmt.Sprintf("this token may not post alerts (role %s; want alerts)", role)
	}, h)
}
