// Package browser drives the status page in Debian's headless Chromium
// through chromedriver (WebDriver): load the page, see the starved host,
// approve it with the button, see the state change.
package browser

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

const (
	chromium     = "/usr/bin/chromium"
	chromedriver = "/usr/bin/chromedriver"
)

// wd is a minimal WebDriver client.
type wd struct {
	t       *testing.T
	base    string
	session string
}

func (w *wd) call(method, path string, body any) map[string]any {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, w.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		w.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		w.t.Fatalf("webdriver %s %s: HTTP %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

func (w *wd) s(path string) string { return "/session/" + w.session + path }

func (w *wd) script(js string) any {
	w.t.Helper()
	return w.call("POST", w.s("/execute/sync"), map[string]any{"script": js, "args": []any{}})["value"]
}

// waitScript polls a JS expression until it returns true.
func (w *wd) waitScript(js string, timeout time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if v, _ := w.script("return " + js).(bool); v {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	w.screenshot("timeout")
	w.t.Fatalf("page never satisfied %s", js)
}

func (w *wd) screenshot(name string) {
	v, _ := w.call("GET", w.s("/screenshot"), nil)["value"].(string)
	png, err := base64.StdEncoding.DecodeString(v)
	if err == nil {
		p := filepath.Join(os.TempDir(), "fenced-status-"+name+".png")
		_ = os.WriteFile(p, png, 0o644)
		w.t.Logf("screenshot %s", p)
	}
}

func TestStatusPageApprove(t *testing.T) {
	for _, p := range []string{chromium, chromedriver} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s missing: install Debian's chromium and chromium-driver (make deps does)", p)
		}
	}
	bin := harness.Fenced(t)
	port := harness.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	harness.Start(t, bin, harness.DevArgs(port)...)
	harness.WaitHTTP(t, base+"/healthz", 20*time.Second)

	dport := harness.FreePort(t)
	harness.Start(t, chromedriver, fmt.Sprintf("--port=%d", dport))
	harness.WaitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/status", dport), 20*time.Second)
	w := &wd{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", dport)}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": []string{
			"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=1400,900"}},
		"unhandledPromptBehavior": "ignore",
	}}}
	rep := w.call("POST", "/session", caps)
	w.session, _ = rep["value"].(map[string]any)["sessionId"].(string)
	if w.session == "" {
		t.Fatalf("no session: %v", rep)
	}
	defer w.call("DELETE", w.s(""), nil)

	w.call("POST", w.s("/url"), map[string]any{"url": base + "/"})
	// the page loads and lists the fleet
	w.waitScript(`document.querySelectorAll("#hosts tr").length === 12`, 30*time.Second)
	// the starved host shows up waiting for approval, flagged incoherent
	w.waitScript(`(() => { const r = document.getElementById("host-lab-007"); return !!r && r.dataset.state === "awaiting_approval" })()`, 60*time.Second)
	if inc, _ := w.script(`return document.getElementById("host-lab-007").innerText.includes("execution incoherence")`).(bool); !inc {
		t.Error("the starved host's row does not show the execution incoherence")
	}
	if p, _ := w.script(`return document.getElementById("pending").innerText`).(string); !strings.Contains(p, "lab-007") {
		t.Errorf("pending approvals do not list lab-007: %q", p)
	}
	w.screenshot("awaiting-approval")

	// click approve; answer the two prompts (name, reason)
	el := w.call("POST", w.s("/element"), map[string]any{"using": "css selector", "value": `#host-lab-007 button[data-action="approve"]`})["value"].(map[string]any)
	var eid string
	for _, v := range el {
		eid, _ = v.(string)
	}
	w.call("POST", w.s("/element/"+eid+"/click"), map[string]any{})
	for _, answer := range []string{"browser-test", "approved from the status page"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			req, _ := http.NewRequest("GET", w.base+w.s("/alert/text"), nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("no prompt appeared after clicking approve")
			}
			time.Sleep(100 * time.Millisecond)
		}
		w.call("POST", w.s("/alert/text"), map[string]any{"text": answer})
		w.call("POST", w.s("/alert/accept"), map[string]any{})
	}
	// the state changes on the page: power cycle, then restored
	w.waitScript(`(() => { const s = document.getElementById("host-lab-007").dataset.state; return s === "rebooting" || s === "restored" || s === "normal" })()`, 60*time.Second)
	w.waitScript(`["restored", "normal"].includes(document.getElementById("host-lab-007").dataset.state)`, 60*time.Second)
	w.screenshot("restored")
	if e, _ := w.script(`return document.getElementById("err").innerText`).(string); e != "" {
		t.Fatalf("page shows an error: %s", e)
	}
	// the approval is in the audit log under the name typed into the prompt
	out, err := exec.Command(bin, "audit", "--host", "lab-007", "--server", base, "--json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"operator":"browser-test"`) {
		t.Fatalf("audit: %v %s", err, out)
	}
}
