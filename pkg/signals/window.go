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

type point struct {
	at int64 // unix milliseconds
	v  float64
}

// window holds the samples of one signal on one host, oldest first. It keeps
// one sample older than the window so the value at the window's start is
// known (sample and hold).
type window struct {
	pts  []point
	head int
}

func (w *window) add(at time.Time, v float64) {
	ms := at.UnixMilli()
	if n := len(w.pts); n > w.head && w.pts[n-1].at > ms {
		return // out of order: a trace is time-ordered, a collector may race; drop
	}
	w.pts = append(w.pts, point{at: ms, v: v})
}

// trim drops samples that can no longer matter for a window of span ending at now.
func (w *window) trim(nowMS, spanMS int64) {
	start := nowMS - spanMS
	// keep the newest sample at or before start
	for w.head+1 < len(w.pts) && w.pts[w.head+1].at <= start {
		w.head++
	}
	if w.head > 64 && w.head*2 > len(w.pts) {
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

// aggregate reduces the window [now-span, now]; scratch is reused for percentiles.
func (w *window) aggregate(agg Agg, nowMS, spanMS int64, scratch []float64) (float64, []float64) {
	w.trim(nowMS, spanMS)
	pts := w.pts[w.head:]
	if len(pts) == 0 {
		return math.NaN(), scratch
	}
	if agg == AggLast || spanMS <= 0 {
		return pts[len(pts)-1].v, scratch
	}
	switch agg {
	case AggMin:
		m := math.Inf(1)
		for _, p := range pts {
			m = math.Min(m, p.v)
		}
		return m, scratch
	case AggMax:
		m := math.Inf(-1)
		for _, p := range pts {
			m = math.Max(m, p.v)
		}
		return m, scratch
	case AggMean:
		// time-weighted mean over the window, holding each sample until the next
		start := nowMS - spanMS
		var sum float64
		var dur int64
		for i, p := range pts {
			from := max(p.at, start)
			to := nowMS
			if i+1 < len(pts) {
				to = pts[i+1].at
			}
			if to > from {
				sum += p.v * float64(to-from)
				dur += to - from
			}
		}
		if dur == 0 {
			return pts[len(pts)-1].v, scratch
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
				if p.v <= top[k-1] {
					continue
				}
				j := k - 1
				for j > 0 && top[j-1] < p.v {
					top[j] = top[j-1]
					j--
				}
				top[j] = p.v
			}
			return top[k-1], scratch
		}
		scratch = scratch[:0]
		for _, p := range pts {
			scratch = append(scratch, p.v)
		}
		slices.Sort(scratch)
		return scratch[rank], scratch
	}
}
