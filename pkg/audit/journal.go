package audit

import (
	"context"
	"fmt"
	"sync"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// Journal records the playbook's intents and outcomes in the audit log.
type Journal struct {
	Log           *Log
	PolicyVersion string
	// Version, when set, gives the policy version in force (a daemon whose
	// policy is reloaded; called from actions off the engine's goroutine)
	// instead of PolicyVersion.
	Version func() string
	// Token returns the leader's fencing token, or an error when this
	// replica must not act (not the leader). Nil means a single replica
	// with token 0.
	Token func(ctx context.Context) (int64, error)

	mu      sync.Mutex
	pending map[string]Record
}

func (j *Journal) version() string {
	if j.Version != nil {
		return j.Version()
	}
	return j.PolicyVersion
}

// token is the leader's fencing token (0 without Token); an error means
// this replica must not write.
func (j *Journal) token(ctx context.Context) (int64, error) {
	if j.Token == nil {
		return 0, nil
	}
	t, err := j.Token(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit: no fencing token: %w", err)
	}
	return t, nil
}

// NewRequestID returns a fresh request id (obs.NewRequestID).
func NewRequestID() string { return obs.NewRequestID() }

// Intent writes an intent record before an action runs and returns its
// request id. An error means the action must not run.
func (j *Journal) Intent(ctx context.Context, in playbook.Intent) (string, error) {
	tok, err := j.token(ctx)
	if err != nil {
		return "", err
	}
	id := in.ID
	if id == "" {
		id = NewRequestID()
	}
	rec := Record{Timestamp: in.At, Component: "playbook", RequestID: id, HostID: in.Host, VMID: in.Target,
		Action: in.Action, Outcome: OutcomeIntent, Detail: in.Detail, PolicyVersion: j.version(), FenceToken: tok}
	r, err := j.Log.Append(ctx, rec)
	if err != nil {
		return "", err
	}
	j.mu.Lock()
	if j.pending == nil {
		j.pending = map[string]Record{}
	}
	j.pending[r.RequestID] = r
	j.mu.Unlock()
	return r.RequestID, nil
}

// Outcome writes the outcome of the action with request id id.
func (j *Journal) Outcome(ctx context.Context, id string, actionErr error) error {
	j.mu.Lock()
	in, ok := j.pending[id]
	delete(j.pending, id)
	j.mu.Unlock()
	version := in.PolicyVersion // the policy the action was decided under
	if !ok {
		version = j.version()
	}
	rec := Record{Component: "playbook", RequestID: id, HostID: in.HostID, VMID: in.VMID, Action: in.Action,
		Outcome: OutcomeOK, PolicyVersion: version, FenceToken: in.FenceToken}
	if actionErr != nil {
		rec.Outcome, rec.Detail = OutcomeError, actionErr.Error()
	}
	_, err := j.Log.Append(ctx, rec)
	return err
}

// Note writes a record that is not an action (playbook.NoteJournal): a
// recovery step's start or end ("recovery evacuate", started, ok, failed,
// timeout, skipped) or a server the instance filter skipped. It is never
// an intent: nothing is reconciled from it.
func (j *Journal) Note(ctx context.Context, n playbook.Note) error {
	tok, err := j.token(ctx)
	if err != nil {
		return err
	}
	_, err = j.Log.Append(ctx, Record{Timestamp: n.At, Component: "playbook", RequestID: n.ID, HostID: n.Host, VMID: n.Target,
		Action: n.Action, Outcome: n.Outcome, Detail: n.Detail, PolicyVersion: j.version(), FenceToken: tok})
	return err
}
