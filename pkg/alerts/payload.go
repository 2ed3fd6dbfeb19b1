// Package alerts takes Alertmanager's webhook notifications (version 4 of
// the webhook format) and turns each alert about a host into what fenced's
// evaluator weighs: a value of one of the nine signals, or a corroboration
// weight, as the run config's alerts: section maps it by alert name.
//
// Alerts are one source, independent of fenced's own, and never sufficient
// on their own: pkg/signals (Alert) says how far they go. A firing alert is
// held until Alertmanager says it resolved, or until it has not been
// repeated for ExpireAfter; the held alerts join each tick's samples
// (Source).
//
// Parse checks a payload whole before anything is applied: a payload it
// refuses changes nothing, and its error names the field.
package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fencedhq/fenced/internal/escape"
)

// Payload is one webhook notification of Alertmanager (the fields fenced
// reads; the others, such as receiver, groupLabels or externalURL, are
// ignored).
type Payload struct {
	Version string  `json:"version"`
	Status  string  `json:"status"`
	Alerts  []Alert `json:"alerts"`
}

// Alert is one alert of a notification.
type Alert struct {
	Status      string            `json:"status"` // firing or resolved
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"startsAt,omitzero"`
	EndsAt      time.Time         `json:"endsAt,omitzero"`
	Fingerprint string            `json:"fingerprint,omitempty"`
}

// Alert statuses.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// FieldError is a payload refused, naming the field ("alerts[2].status").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "alerts: " + e.Msg
	}
	return "alerts: " + e.Field + ": " + e.Msg
}

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// wire is a notification as sent; pointers tell a field left out from an
// empty one.
type wire struct {
	Version *string           `json:"version"`
	Status  *string           `json:"status"`
	Alerts  []json.RawMessage `json:"alerts"`
}

type wireAlert struct {
	Status      *string           `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    *string           `json:"startsAt"`
	EndsAt      *string           `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// Parse decodes and checks one notification: a JSON object of version "4"
// with a status and a list of alerts, each with a status (firing or
// resolved), labels, and RFC 3339 times where given.
func Parse(body []byte) (*Payload, error) {
	var w wire
	if err := decodeOne(body, &w, ""); err != nil {
		return nil, err
	}
	switch {
	case w.Version == nil:
		return nil, fieldErr("version", `required: Alertmanager's webhook format "4"`)
	case *w.Version != "4":
		return nil, fieldErr("version", `%s: want "4" (Alertmanager's webhook format)`, excerpt(*w.Version))
	case w.Status == nil:
		return nil, fieldErr("status", "required: firing or resolved")
	case *w.Status != Firing && *w.Status != Resolved:
		return nil, fieldErr("status", "%s: want firing or resolved", excerpt(*w.Status))
	case w.Alerts == nil:
		return nil, fieldErr("alerts", "required: a list of alerts")
	}
	p := &Payload{Version: *w.Version, Status: *w.Status, Alerts: make([]Alert, 0, len(w.Alerts))}
	for i, raw := range w.Alerts {
		f := fmt.Sprintf("alerts[%d]", i)
		var wa wireAlert
		if err := decodeOne(raw, &wa, f); err != nil {
			return nil, err
		}
		a := Alert{Labels: wa.Labels, Annotations: wa.Annotations, Fingerprint: wa.Fingerprint}
		switch {
		case wa.Status == nil:
			return nil, fieldErr(f+".status", "required: firing or resolved")
		case *wa.Status != Firing && *wa.Status != Resolved:
			return nil, fieldErr(f+".status", "%s: want firing or resolved", excerpt(*wa.Status))
		case wa.Labels == nil:
			return nil, fieldErr(f+".labels", "required: the alert's labels (alertname and the host label)")
		}
		a.Status = *wa.Status
		for _, t := range []struct {
			name string
			v    *string
			dst  *time.Time
		}{{"startsAt", wa.StartsAt, &a.StartsAt}, {"endsAt", wa.EndsAt, &a.EndsAt}} {
			if t.v == nil {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, *t.v)
			if err != nil {
				return nil, fieldErr(f+"."+t.name, "%s: want an RFC 3339 time", excerpt(*t.v))
			}
			*t.dst = at
		}
		p.Alerts = append(p.Alerts, a)
	}
	return p, nil
}

// decodeOne decodes exactly one JSON object into v, naming the field a
// value of the wrong type sits in (under prefix).
func decodeOne(data []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			f := te.Field
			if prefix != "" {
				f = prefix + "." + f
				if te.Field == "" {
					f = prefix
				}
			}
			if f == "" {
				return fieldErr("", "want a JSON object, have a %s", te.Value)
			}
			return fieldErr(f, "want a %s, have a %s", kind(te.Type.Kind().String()), te.Value)
		case errors.As(err, &se):
			return fieldErr(prefix, "not JSON: %s at byte %d", se.Error(), se.Offset)
		case errors.Is(err, io.EOF):
			return fieldErr(prefix, "empty body: want Alertmanager's webhook JSON")
		}
		return fieldErr(prefix, "not JSON: %v", err)
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return fieldErr(prefix, "want exactly one JSON object: something follows it")
	}
	return nil
}

func kind(k string) string {
	switch k {
	case "map", "struct":
		return "JSON object"
	case "slice":
		return "list"
	case "ptr":
		return "string"
	}
	return k
}

// excerpt keeps an echoed value short and printable.
func excerpt(s string) string { return escape.Excerpt(s, 40) }
