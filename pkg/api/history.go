package api

import (
	"slices"
	"time"

	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/report"
	"github.com/fencedhq/fenced/pkg/signals"
)

// history keeps the last n snapshots' d and state of every host (a few
// bytes a host a tick) and, for at most maxDetail hosts, every signal's
// value and contribution: the hosts that left normal or came within half
// of d_warn. A host keeps its detail while it stays interesting; when
// maxDetail hosts have it, a host that becomes interesting takes the
// detail of the one least recently interesting, never of one interesting
// at this tick. A host gone from the snapshot is forgotten.
type history struct {
	n, maxDetail int
	count        int // snapshots recorded
	times        []time.Time
	hosts        map[string]*hostHist
	detailed     []*hostHist // the hosts with signal detail
}

type hostHist struct {
	first  int // the snapshot count when the host appeared
	seen   int // the last snapshot count that had the host
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
	var wants []int // the hosts interesting now without detail (index in snap.Hosts)
	for k, v := range snap.Hosts {
		hh := h.hosts[v.Host.Name]
		if hh == nil {
			hh = &hostHist{first: h.count, d: make([]float32, h.n), state: make([]uint8, h.n), hot: -1}
			h.hosts[v.Host.Name] = hh
		}
		hh.seen = h.count
		hh.d[i], hh.state[i] = float32(v.Verdict.D), stateCode(v.Host.State)
		if v.Host.State != playbook.Normal || (th.Warn > 0 && v.Verdict.D >= th.Warn/2) {
			hh.hot = h.count
			if hh.detail == nil {
				wants = append(wants, k)
			}
		}
		if hh.detail != nil {
			hh.detail.put(i, v.Verdict, sig)
		}
	}
	for _, k := range wants {
		dt := h.room()
		if dt == nil {
			break // every host with detail is interesting now: they keep it
		}
		v := snap.Hosts[k]
		hh := h.hosts[v.Host.Name]
		hh.detail = dt
		h.detailed = append(h.detailed, hh)
		dt.put(i, v.Verdict, sig)
	}
	if len(h.hosts) > len(snap.Hosts) { // some host left the snapshot
		for name, hh := range h.hosts {
			if hh.seen != h.count {
				delete(h.hosts, name)
				if hh.detail != nil {
					h.detailed = slices.DeleteFunc(h.detailed, func(x *hostHist) bool { return x == hh })
				}
			}
		}
	}
	h.count++
}

// room is signal detail for a host that became interesting at this
// snapshot: new while fewer than maxDetail hosts have it, else taken from
// the host least recently interesting; nil when every host with detail is
// interesting now.
func (h *history) room() *detail {
	if len(h.detailed) < h.maxDetail {
		return newDetail(h.n, h.count)
	}
	coldest := -1
	for j, hh := range h.detailed {
		if hh.hot < h.count && (coldest < 0 || hh.hot < h.detailed[coldest].hot) {
			coldest = j
		}
	}
	if coldest < 0 {
		return nil
	}
	dt := h.detailed[coldest].detail
	h.detailed[coldest].detail = nil
	h.detailed = slices.Delete(h.detailed, coldest, coldest+1)
	dt.from = h.count
	clear(dt.warn)
	clear(dt.crit)
	return dt
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

// put keeps a verdict's signals at slot i.
func (dt *detail) put(i int, v signals.Verdict, sig map[signals.Name]signals.SignalConfig) {
	for k := range signals.All {
		dt.value[k][i], dt.contrib[k][i] = nan32, 0
	}
	for _, c := range v.Contributions {
		k := slices.Index(signals.All, c.Signal)
		if k < 0 {
			continue
		}
		dt.value[k][i], dt.contrib[k][i] = float32(c.Value), float32(c.Contribution)
		if sc, ok := sig[c.Signal]; ok {
			dt.warn[k], dt.crit[k] = sc.Warn, sc.Crit
		}
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
