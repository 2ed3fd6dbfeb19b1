package notify

import (
	"context"

	"github.com/fencedhq/fenced/pkg/audit"
)

// AuditRecorder keeps the record of deliveries in the audit log.
type AuditRecorder struct{ Log *audit.Log }

// Delivered appends one record per delivery outcome.
func (r AuditRecorder) Delivered(ctx context.Context, d Delivery) {
	detail := d.Endpoint + " " + d.Incident
	if d.Error != "" {
		detail += ": " + d.Error
	}
	_, _ = r.Log.Append(ctx, audit.Record{Timestamp: d.At, Component: "notify", HostID: d.Host,
		Action: "webhook " + d.State, Outcome: d.Outcome, Detail: detail})
}
