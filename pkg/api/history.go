package api

import (
	"time"

	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/report"
	"github.com/fencedhq/fenced/pkg/signals"
)

// history keeps the last n snapshots' d and state of every host (a few
// bytes a host a tick) and, for at most maxDetail hosts, every signal's
// value and contribution: the hosts that left normal or came within half
// of d_warn, the least recently interesting dropped first.
type history struct {
	n, maxDetail int
	count        int // snapshots recorded
	times        []time.Time
	hosts        map[string]*hostHist
	detailed     int
}

type hostHist struct {
	first  int // the snapshot count when the host appeared
	d      []float32
	state  []uint8
	detail *detail
	hot    int // the last snapshot at which the host was interesting
}

type detail struct {
	from    int // the snapshot count when the detail started
	value   [][]float32
	contrib [][]float32
	warn    []float64
	crit    []float64
}

var stateCodes = []playbook.State{playbook.Normal, playbook.Warn, playbook.Critical, playbook.AwaitingApproval,
	playbook.Fenced, playbook.Rebooting, playbook.Restored, playbook.NeedsHuman}

func stateCode(s playbook.State) uint8 {
	for i, c := range stateCodes {
		if c == s {
			return uint8(i)
		}
	}
	return 0
}

func newHistory(n, maxDetail int) *history {
	return &history{n: n, maxDetail: maxDetail, times: make([]time.Time, n), hosts: map[string]*hostHist{}}
}

// record takes one snapshot; th are d's thresholds, sig each signal's.
func (h *history) record(snap daemon.Snapshot, th report.Thresholds, sig map[signals.Name]signals.SignalConfig) {
	i := h.count % h.n
	h.times[i] = snap.At
	for _, v := range snap.Hosts {
		hh := h.hosts[v.Host.Name]
		if hh == nil {
			hh = &hostHist{first: h.count, d: make([]float32, h.n), state: make([]uint8, h.n), hot: -1}
			h.hosts[v.Host.Name] = hh
		}
		hh.d[i], hh.state[i] = float32(v.Verdict.D), stateCode(v.Host.State)
		if v.Host.State != playbook.Normal || (th.Warn > 0 && v.Verdict.D >= th.Warn/2) {
			hh.hot = h.count
			if hh.detail == nil {
				h.makeRoom()
				hh.detail = newDetail(h.n, h.count)
				h.detailed++
			}
		}
		if dt := hh.detail; dt != nil {
			for k := range signals.All {
				dt.value[k][i], dt.contrib[k][i] = float32(nan32), 0
			}
			for _, c := range v.Verdict.Contributions {
				for k, name := range signals.All {
					if name == c.Signal {
						dt.value[k][i], dt.contrib[k][i] = float32(c.Value), float32(c.Contribution)
						if sc, ok := sig[name]; ok {
							dt.warn[k], dt.crit[k] = sc.Warn, sc.Crit
						}
					}
				}
			}
		}
	}
	h.count++
}

const nan32 = -1 // a signal absent at a tick

func newDetail(n, from int) *detail {
	d := &detail{from: from, warn: make([]float64, len(signals.All)), crit: make([]float64, len(signals.All))}
	for range signals.All {
		d.value = append(d.value, make([]float32, n))
		d.contrib = append(d.contrib, make([]float32, n))
	}
	return d
}

// makeRoom drops the detail of the host least recently interesting when
// maxDetail hosts have it.
func (h *history) makeRoom() {
	if h.detailed < h.maxDetail {
		return
	}
	var coldest *hostHist
	for _, hh := range h.hosts {
		if hh.detail != nil && (coldest == nil || hh.hot < coldest.hot) {
			coldest = hh
		}
	}
	if coldest != nil {
		coldest.detail = nil
		h.detailed--
	}
}

// of is a host's history, oldest first.
func (h *history) of(host string) report.History {
	out := report.History{T: []time.Time{}, D: []float64{}, State: []string{}}
	hh := h.hosts[host]
	if hh == nil {
		return out
	}
	start := max(hh.first, h.count-h.n)
	for c := start; c < h.count; c++ {
		i := c % h.n
		out.T = append(out.T, h.times[i])
		out.D = append(out.D, round3(float64(hh.d[i])))
		out.State = append(out.State, string(stateCodes[hh.state[i]]))
	}
	if dt := hh.detail; dt != nil {
		from := max(dt.from, start)
		out.Detail = from - start
		for k, name := range signals.All {
			s := report.Series{Signal: string(name), Warn: dt.warn[k], Crit: dt.crit[k], Value: []float64{}, Contribution: []float64{}}
			for c := from; c < h.count; c++ {
				i := c % h.n
				v := float64(dt.value[k][i])
				if v == nan32 {
					v = 0
				}
				s.Value = append(s.Value, round3(v))
				s.Contribution = append(s.Contribution, round3(float64(dt.contrib[k][i])))
			}
			out.Signals = append(out.Signals, s)
		}
	}
	return out
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5*sign(v))) / 1000 }

func sign(v float64) float64 {
	if v < 0 {
		return -1
	}
	return 1
}
