package fencing

import "testing"

// TestReached: only the state an action aims at counts it done; a state in
// transition or an unknown one never does (a new leader would otherwise
// skip a power-on that has not happened).
func TestReached(t *testing.T) {
	for _, c := range []struct {
		action string
		st     PowerState
		want   bool
	}{
		{"power_off", Off, true}, {"power_off", On, false}, {"power_off", PoweringOff, false}, {"power_off", Unknown, false},
		{"power_on", On, true}, {"power_on", Off, false}, {"power_on", PoweringOn, false}, {"power_on", Unknown, false},
		{"power_on", PoweringOff, false}, {"power_on", "", false}, {"power_cycle", On, false},
	} {
		if got := Reached(c.action, c.st); got != c.want {
			t.Errorf("Reached(%s, %q) = %v, want %v", c.action, c.st, got, c.want)
		}
	}
}
