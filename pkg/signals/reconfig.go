package signals

import "fmt"

// SetConfig replaces the evaluator's configuration (a reloaded policy) and
// keeps every host's samples: a longer window has less history at first, a
// shorter one drops what falls out of it. An invalid cfg changes nothing.
func (e *Evaluator) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("signals: %w", err)
	}
	cfg.HardFailure = cfg.HardFailure.withDefaults()
	var sig [numSignals]SignalConfig
	var has [numSignals]bool
	for n, s := range cfg.Signals {
		i := index(n)
		sig[i], has[i] = s, true
	}
	e.cfg, e.sig, e.has = cfg, sig, has
	return nil
}
