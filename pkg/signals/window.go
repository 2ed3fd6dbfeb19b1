package signals

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Agg is how a window of samples is reduced to one value.
type Agg string

// Aggregations.
const (
	AggLast Agg = "last" // the newest sample
	AggMin  Agg = "min"  // "sustained for the window": the lowest value in it
	AggMax  Agg = "max"
	AggMean Agg = "mean" // "rate over the window"
	AggP95  Agg = "p95"
	AggP99  Agg = "p99"
)

// ParseAgg checks an aggregation name.
func ParseAgg(s string) (Agg, error) {
	switch a := Agg(s); a {
	case AggLast, AggMin, AggMax, AggMean, AggP95, AggP99:
		return a, nil
	}
	return "", fmt.Errorf("unknown aggregation %q (want last, min, max, mean, p95 or p99)", s)
}

// point is 8 bytes: 10,000 hosts × 9 signals × a 5 min window add up.
// Times have one-second resolution, values float32 precision.
type point struct {
	at uint32 // seconds since 2000-01-01 UTC
	v  float32
}

var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// secs converts a time to window seconds.
func secs(t time.Time) int64 { return max(t.Unix()-epoch, 0) }

// window holds the samples of one signal on one host, oldest first. It keeps
// one sample older than the window so the value at the window's start is
// known (sample and hold).
type window struct {
	pts  []point
	head int
}

func (w *window) add(at time.Time, v float64) {
	s := uint32(secs(at))
	if n := len(w.pts); n > w.head && w.pts[n-1].at > s {
		return // out of order: a trace is time-ordered, a collector may race; drop
	}
	w.pts = append(w.pts, point{at: s, v: float32(v)})
}

// trim drops samples that can no longer matter for a window of span ending at now (seconds).
func (w *window) trim(now, span int64) {
	start := now - span
	// keep the newest sample at or before start
	for w.head+1 < len(w.pts) && int64(w.pts[w.head+1].at) <= start {
		w.head++
	}
	// compact early: at 10 s samples a 1 min window holds 7 points, and
	// 10,000 hosts × 9 signals make every dropped point count
	if w.head >= 4 {
		n := copy(w.pts, w.pts[w.head:])
		w.pts = w.pts[:n]
		w.head = 0
	}
}

func (w *window) last() (point, bool) {
	if len(w.pts) == w.head {
		return point{}, false
	}
	return w.pts[len(w.pts)-1], true
}

// aggregate reduces the window [now-span, now] (seconds); scratch is reused for percentiles.
func (w *window) aggregate(agg Agg, now, span int64, scratch []float64) (float64, []float64) {
	w.trim(now, span)
	pts := w.pts[w.head:]
	if len(pts) == 0 {
		return math.NaN(), scratch
	}
	if agg == AggLast || span <= 0 {
		return float64(pts[len(pts)-1].v), scratch
	}
	switch agg {
	case AggMin:
		m := math.Inf(1)
		for _, p := range pts {
			m = math.Min(m, float64(p.v))
		}
		return m, scratch
	case AggMax:
		m := math.Inf(-1)
		for _, p := range pts {
			m = math.Max(m, float64(p.v))
		}
		return m, scratch
	case AggMean:
		// time-weighted mean over the window, holding each sample until the next
		start := now - span
		var sum float64
		var dur int64
		for i, p := range pts {
			from := max(int64(p.at), start)
			to := now
			if i+1 < len(pts) {
				to = int64(pts[i+1].at)
			}
			if to > from {
				sum += float64(p.v) * float64(to-from)
				dur += to - from
			}
		}
		if dur == 0 {
			return float64(pts[len(pts)-1].v), scratch
		}
		return sum / float64(dur), scratch
	default: // percentiles, nearest rank
		q := 0.95
		if agg == AggP99 {
			q = 0.99
		}
		n := len(pts)
		rank := max(int(math.Ceil(q*float64(n)))-1, 0)
		if k := n - rank; k <= 4 {
			// the k-th largest value: a short scan beats a sort for small windows
			var top [4]float64
			for i := range k {
				top[i] = math.Inf(-1)
			}
			for _, p := range pts {
				v := float64(p.v)
				if v <= top[k-1] {
					continue
				}
				j := k - 1
				for j > 0 && top[j-1] < v {
					top[j] = top[j-1]
					j--
				}
				top[j] = v
			}
			return top[k-1], scratch
		}
		scratch = scratch[:0]
		for _, p := range pts {
			scratch = append(scratch, float64(p.v))
		}
		slices.Sort(scratch)
		return scratch[rank], scratch
	}
}
