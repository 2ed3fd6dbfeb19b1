// Package clock is the one clock fenced reads time from. Production code takes
// a Clock; tests pass a *Fake (or run under testing/synctest with Real).
package clock

import (
	"sync"
	"time"
)

// Clock tells the time and waits.
type Clock interface {
	Now() time.Time
	// After delivers the time on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// After is time.After.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Fake is a manually advanced clock for tests and simulations.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFake returns a Fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns a channel that fires when the clock is advanced past d.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := f.now.Add(d)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, waiter{at: at, ch: ch})
	return ch
}

// Set moves the clock to t (never backwards) and fires due waiters.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		return
	}
	f.now = t
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.at.After(t) {
			w.ch <- t
			continue
		}
		kept = append(kept, w)
	}
	f.waiters = kept
}

// Advance moves the clock forward by d.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Scaled is a wall clock that runs Factor times faster from Start: for demos
// and browser tests that must show minutes of playbook in seconds.
type Scaled struct {
	Start  time.Time // the scaled clock reads Start at Origin
	Origin time.Time // a real instant
	Factor float64
}

// NewScaled returns a clock starting now that runs factor times faster.
func NewScaled(factor float64) *Scaled {
	now := time.Now()
	return &Scaled{Start: now, Origin: now, Factor: factor}
}

// Now is Start + Factor × (real time since Origin).
func (s *Scaled) Now() time.Time {
	return s.Start.Add(time.Duration(float64(time.Since(s.Origin)) * s.Factor))
}

// After waits d of scaled time.
func (s *Scaled) After(d time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		<-time.After(time.Duration(float64(d) / s.Factor))
		out <- s.Now()
	}()
	return out
}
