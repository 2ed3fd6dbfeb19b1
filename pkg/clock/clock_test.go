package clock

import (
	"testing"
	"time"
)

func TestFakeAfterFiresOnlyWhenDue(t *testing.T) {
	t0 := time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)
	f := NewFake(t0)
	ch := f.After(10 * time.Second)
	f.Advance(9 * time.Second)
	select {
	case <-ch:
		t.Fatal("fired early")
	default:
	}
	f.Advance(time.Second)
	select {
	case got := <-ch:
		if !got.Equal(t0.Add(10 * time.Second)) {
			t.Fatalf("fired with %v", got)
		}
	default:
		t.Fatal("did not fire when due")
	}
	f.Set(t0) // never backwards
	if !f.Now().Equal(t0.Add(10 * time.Second)) {
		t.Fatal("clock went backwards")
	}
	select {
	case <-f.After(0):
	default:
		t.Fatal("After(0) must fire at once")
	}
}

func TestScaledRunsFaster(t *testing.T) {
	s := &Scaled{Start: time.Unix(0, 0), Origin: time.Now().Add(-time.Second), Factor: 60}
	if got := s.Now().Sub(time.Unix(0, 0)); got < 59*time.Second || got > 70*time.Second {
		t.Fatalf("one real second read as %s at ×60", got)
	}
}
