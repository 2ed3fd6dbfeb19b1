package detection

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/stack"
)

// Scenario 4: recovery side by side. Three servers on cn1; cn1 stops
// executing (nova-compute and libvirtd SIGSTOPped); time from the freeze
// until every server is ACTIVE on another host. Masakari (every setting at
// its default) is notified at once, as its host monitor would notify it;
// fenced, in auto mode with after_fence evacuate, finds the failure itself,
// fences, powers cn1 off (verified) and evacuates. The two never run in the
// same trial.
func TestWholeHostRecovery(t *testing.T) {
	if !long {
		t.Skip("Masakari side by side runs in make detection only (FENCED_DETECTION_TRIALS set)")
	}
	const victim = "cn1"
	const nServers = 3
	mtab := newTable("Scenario 4a: Masakari 14.0.2 at its defaults, notified at once (COMPUTE_HOST, STOPPED), from the freeze",
		"trial", "notification sent", "`running`", "3 servers ACTIVE elsewhere", "`finished`")
	ftab := newTable("Scenario 4b: fenced in auto mode (after_fence: evacuate), from the freeze",
		"trial", "fenced critical", "BMC power Off (verified)", "3 servers ACTIVE elsewhere", "Nova `down`")
	var mk, fd []time.Duration
	defer func() {
		mtab.print(t)
		ftab.print(t)
		if len(mk) > 0 && len(fd) > 0 {
			figure(t, "recovery summary: Masakari %s, fenced %s; ratio of medians fenced/Masakari %.3f",
				spread(mk), spread(fd), median(fd).Seconds()/median(mk).Seconds())
		}
	}()

	t.Run("masakari", func(t *testing.T) {
		m := startMasakari(t)
		for i := 1; i <= trials; i++ {
			t.Run(fmt.Sprintf("trial%d-%s", i, victim), func(t *testing.T) {
				w := cleanWorld(t)
				ids := w.bootOn(victim, nServers)
				mc := newMasakariClient(t, m)
				mc.releaseHost(victim)
				t0 := time.Now()
				if err := st.Freeze(victim); err != nil {
					t.Fatal(err)
				}
				id := mc.notify(victim)
				sent := time.Since(t0)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				var running, evacuated, finished time.Duration
				status := ""
				deadline := t0.Add(8 * time.Minute)
				for (evacuated == 0 || finished == 0) && time.Now().Before(deadline) {
					if evacuated == 0 && activeElsewhere(ctx, t, ids, victim) {
						evacuated = time.Since(t0)
					}
					if s, err := mc.status(id); err == nil {
						if s != status {
							t.Logf("%.1fs: notification %s", time.Since(t0).Seconds(), s)
							status = s
						}
						if running == 0 && s == "running" {
							running = time.Since(t0)
						}
						if s == "finished" && finished == 0 {
							finished = time.Since(t0)
						}
						if s == "failed" || s == "ignored" {
							break
						}
					}
					time.Sleep(500 * time.Millisecond)
				}
				mtab.add(fmt.Sprint(i), secs(sent), secs(running), secs(evacuated), secs(finished))
				figure(t, "masakari trial %d %s: notified %.1fs, running %.1fs, %d servers ACTIVE elsewhere %.1fs, notification %s %.1fs",
					i, victim, sent.Seconds(), running.Seconds(), nServers, evacuated.Seconds(), status, finished.Seconds())
				// a reboot of the failed host: its nova-compute starts afresh and
				// completes the evacuations (the world's restore starts it again)
				if err := st.Kill(victim); err != nil {
					t.Error(err)
				}
				if evacuated == 0 {
					t.Fatalf("Masakari did not evacuate the servers of %s within %s (notification %s)", victim, time.Since(t0).Round(time.Second), status)
				}
				mk = append(mk, evacuated)
				t.Cleanup(func() { mc.releaseHost(victim) })
			})
		}
	})

	t.Run("fenced", func(t *testing.T) {
		for i := 1; i <= trials; i++ {
			t.Run(fmt.Sprintf("trial%d-%s", i, victim), func(t *testing.T) {
				w := cleanWorld(t)
				ids := w.bootOn(victim, nServers)
				r := startReplica(t, "auto")
				r.waitWatching(2 * time.Minute)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				mark := bmc.mark()
				t0 := time.Now()
				if err := st.Freeze(victim); err != nil {
					t.Fatal(err)
				}
				var crit, off, evacuated, down time.Duration
				var at hostView
				deadline := t0.Add(5 * time.Minute)
				for evacuated == 0 && time.Now().Before(deadline) {
					if crit == 0 {
						if h, err := r.host(victim); err == nil && severe(h.Host.State) {
							crit, at = time.Since(t0), h
						}
					}
					if off == 0 {
						if p, err := bmc.power(victim); err == nil && p == "Off" {
							off = time.Since(t0)
						}
					}
					if activeElsewhere(ctx, t, ids, victim) {
						evacuated = time.Since(t0)
					}
					if down == 0 {
						if s, err := service(ctx, t, victim); err == nil && s.State == "down" {
							down = time.Since(t0)
						}
					}
					time.Sleep(250 * time.Millisecond)
				}
				ftab.add(fmt.Sprint(i), secs(crit), secs(off), secs(evacuated), secs(down))
				figure(t, "fenced recovery trial %d %s: critical %.1fs (%q), power Off %.1fs, %d servers ACTIVE elsewhere %.1fs, Nova down (forced) %.1fs",
					i, victim, crit.Seconds(), at.Verdict.HardFailure, off.Seconds(), nServers, evacuated.Seconds(), down.Seconds())
				if evacuated == 0 {
					h, _ := r.host(victim)
					t.Fatalf("fenced did not evacuate the servers of %s within %s (state %s: %s)", victim, time.Since(t0).Round(time.Second), h.Host.State, h.Host.Reason)
				}
				fd = append(fd, evacuated)
				if off == 0 || off > evacuated {
					t.Errorf("the servers were ACTIVE elsewhere (%s) before the BMC read Off (%s)", secs(evacuated), secs(off))
				}
				if rs := bmc.resets(victim, mark); len(rs) == 0 {
					t.Errorf("no BMC reset of %s", victim)
				}
				// let fenced finish its power on before it stops (the world's
				// restore powers on what is still off)
				for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
					if p, err := bmc.power(victim); err == nil && p == "On" {
						break
					}
				}
			})
		}
	})
}

// masakariClient talks to Masakari's API as the stack's admin.
type masakariClient struct {
	t       *testing.T
	m       *stack.Masakari
	token   string
	project string
}

func newMasakariClient(t *testing.T, m *stack.Masakari) *masakariClient {
	t.Helper()
	body := fmt.Sprintf(`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":%q,"domain":{"name":"Default"},"password":%q}}},"scope":{"project":{"name":%q,"domain":{"name":"Default"}}}}}`,
		os.Getenv("OS_USERNAME"), os.Getenv("OS_PASSWORD"), os.Getenv("OS_PROJECT_NAME"))
	resp, err := http.Post(strings.TrimSuffix(os.Getenv("OS_AUTH_URL"), "/")+"/auth/tokens", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token struct {
			Project struct {
				ID string `json:"id"`
			} `json:"project"`
		} `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 201 {
		t.Fatalf("keystone token: %s, %v", resp.Status, err)
	}
	return &masakariClient{t: t, m: m, token: resp.Header.Get("X-Subject-Token"), project: tok.Token.Project.ID}
}

func (c *masakariClient) do(method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.m.URL+"/v1/"+c.project+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", c.token)
	req.Header.Set("OpenStack-API-Version", "instance-ha 1.1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("masakari %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// notify posts what masakari-hostmonitor posts when a host stops: type
// COMPUTE_HOST, event STOPPED; it returns the notification's uuid.
func (c *masakariClient) notify(host string) string {
	c.t.Helper()
	in := map[string]any{"notification": map[string]any{
		"type": "COMPUTE_HOST", "hostname": host, "generated_time": time.Now().UTC().Format("2006-01-02T15:04:05"),
		"payload": map[string]any{"event": "STOPPED", "host_status": "NORMAL", "cluster_status": "OFFLINE"},
	}}
	var out struct {
		Notification struct {
			UUID string `json:"notification_uuid"`
		} `json:"notification"`
	}
	if err := c.do("POST", "/notifications", in, &out); err != nil {
		c.t.Fatal(err)
	}
	return out.Notification.UUID
}

func (c *masakariClient) status(id string) (string, error) {
	var out struct {
		Notification struct {
			Status string `json:"status"`
		} `json:"notification"`
	}
	err := c.do("GET", "/notifications/"+id, nil, &out)
	return out.Notification.Status, err
}

// releaseHost takes host out of maintenance in Masakari's segment (a
// recovery leaves it on_maintenance, and Masakari refuses notifications
// for a host in maintenance).
func (c *masakariClient) releaseHost(host string) {
	c.t.Helper()
	var out struct {
		Hosts []struct {
			UUID          string `json:"uuid"`
			Name          string `json:"name"`
			OnMaintenance bool   `json:"on_maintenance"`
		} `json:"hosts"`
	}
	if err := c.do("GET", "/segments/"+c.m.Segment+"/hosts", nil, &out); err != nil {
		c.t.Error(err)
		return
	}
	for _, h := range out.Hosts {
		if h.Name == host && h.OnMaintenance {
			if err := c.do("PUT", "/segments/"+c.m.Segment+"/hosts/"+h.UUID, map[string]any{"host": map[string]any{"on_maintenance": false}}, nil); err != nil {
				c.t.Error(err)
			}
		}
	}
}
