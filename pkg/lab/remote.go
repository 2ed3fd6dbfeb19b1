package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
)

// Remote is a replica's view of a lab Server: it implements the daemon's
// Source and the playbook's ControlPlane, Gate, PowerFencer and HostChecker.
type Remote struct {
	URL     string
	Replica string
	Client  *http.Client // default: 30 s timeout
}

func (r *Remote) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(r.URL, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set(ReplicaHeader, r.Replica)
	c := r.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("lab %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		var e errBody
		_ = json.Unmarshal(data, &e)
		return fmt.Errorf("lab %s %s: HTTP %d: %s", method, path, resp.StatusCode, e.Error)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Collect implements the daemon's Source.
func (r *Remote) Collect(ctx context.Context, _ time.Time) ([]signals.Sample, error) {
	var out []signals.Sample
	err := r.do(ctx, "GET", "/lab/v1/samples", nil, &out)
	return out, err
}

// Control is what Nova says about a host (false when the lab cannot answer).
func (r *Remote) Control(host string) (signals.Control, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var c signals.Control
	if err := r.do(ctx, "GET", "/lab/v1/hosts/"+host+"/control", nil, &c); err != nil {
		return c, false
	}
	return c, true
}

// Disable implements playbook.ControlPlane.
func (r *Remote) Disable(ctx context.Context, host, reason string) error {
	return r.do(ctx, "POST", "/lab/v1/hosts/"+host+"/disable", map[string]string{"reason": reason}, nil)
}

// Enable implements playbook.ControlPlane.
func (r *Remote) Enable(ctx context.Context, host string) error {
	return r.do(ctx, "POST", "/lab/v1/hosts/"+host+"/enable", nil, nil)
}

// ForceDown implements playbook.ControlPlane.
func (r *Remote) ForceDown(ctx context.Context, host string, down bool) error {
	return r.do(ctx, "POST", "/lab/v1/hosts/"+host+"/force_down", map[string]bool{"down": down}, nil)
}

// Servers implements playbook.ControlPlane.
func (r *Remote) Servers(ctx context.Context, host string) ([]playbook.Server, error) {
	var out []playbook.Server
	err := r.do(ctx, "GET", "/lab/v1/hosts/"+host+"/servers", nil, &out)
	return out, err
}

// LiveMigrate implements playbook.ControlPlane.
func (r *Remote) LiveMigrate(ctx context.Context, serverID, dest string) error {
	host, _, _ := strings.Cut(serverID, "-vm")
	return r.do(ctx, "POST", "/lab/v1/hosts/"+host+"/live_migrate", map[string]string{"server": serverID, "dest": dest}, nil)
}

// Check implements playbook.Gate.
func (r *Remote) Check(ctx context.Context, host string) playbook.GateAnswer {
	var a playbook.GateAnswer
	if err := r.do(ctx, "GET", "/lab/v1/hosts/"+host+"/gate", nil, &a); err != nil {
		return playbook.GateAnswer{Reasons: []string{"gate unknown: " + err.Error()}}
	}
	return a
}

// PowerCycle implements playbook.PowerFencer.
func (r *Remote) PowerCycle(ctx context.Context, host string) error {
	return r.do(ctx, "POST", "/lab/v1/hosts/"+host+"/power_cycle", nil, nil)
}

// PowerOff implements playbook.PowerFencer.
func (r *Remote) PowerOff(ctx context.Context, host string) error {
	return r.do(ctx, "POST", "/lab/v1/hosts/"+host+"/power_off", nil, nil)
}

// PowerOn implements playbook.PowerFencer.
func (r *Remote) PowerOn(ctx context.Context, host string) error {
	return r.do(ctx, "POST", "/lab/v1/hosts/"+host+"/power_on", nil, nil)
}

// PowerState implements playbook.PowerFencer.
func (r *Remote) PowerState(ctx context.Context, host string) (fencing.PowerState, error) {
	p, err := r.Power(ctx, host)
	if err != nil {
		return fencing.Unknown, err
	}
	return p.State, nil
}

// Evacuate implements playbook.ControlPlane.
func (r *Remote) Evacuate(ctx context.Context, serverID, dest string) error {
	host, _, _ := strings.Cut(serverID, "-vm")
	return r.do(ctx, "POST", "/lab/v1/hosts/"+host+"/evacuate", map[string]string{"server": serverID, "dest": dest}, nil)
}

// Place implements playbook.Placer: every server to the gate's destination.
func (r *Remote) Place(ctx context.Context, host string, servers []playbook.Server) ([]playbook.Placement, map[string]string) {
	var d struct {
		Dest string `json:"dest"`
	}
	if err := r.do(ctx, "GET", "/lab/v1/hosts/"+host+"/destination", nil, &d); err != nil {
		d.Dest = ""
	}
	return placeAll(servers, d.Dest)
}

// Power reads the lab BMC's view of a host.
func (r *Remote) Power(ctx context.Context, host string) (PowerStatus, error) {
	var p PowerStatus
	err := r.do(ctx, "GET", "/lab/v1/hosts/"+host+"/power", nil, &p)
	return p, err
}

// Back implements playbook.HostChecker.
func (r *Remote) Back(ctx context.Context, host string) (bool, error) {
	p, err := r.Power(ctx, host)
	return p.Back, err
}

// Notify implements playbook.Notifier (the lab has no on-call).
func (r *Remote) Notify(context.Context, playbook.Notification) {}

// Starve makes host start starving now, like the lab's victim (tests).
func (r *Remote) Starve(ctx context.Context, host string) error {
	return r.do(ctx, "POST", "/lab/v1/hosts/"+host+"/starve", nil, nil)
}

// Actions returns what the lab was asked to do, and the collection calls.
func (r *Remote) Actions(ctx context.Context) (actions, collects []Action, err error) {
	var out struct {
		Actions []Action `json:"actions"`
		Collect []Action `json:"collect"`
	}
	err = r.do(ctx, "GET", "/lab/v1/actions", nil, &out)
	return out.Actions, out.Collect, err
}
