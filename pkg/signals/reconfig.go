package signals

// SetConfig replaces the evaluator's configuration (a reloaded policy) and
// keeps every host's samples: a longer window has less history at first, a
// shorter one drops what falls out of it. An invalid cfg changes nothing.
func (e *Evaluator) SetConfig(cfg Config) error {
	s, err := Compile(cfg)
	if err != nil {
		return err
	}
	e.Scoring = s
	return nil
}
