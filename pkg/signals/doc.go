// Package signals turns execution-plane samples into a per-host verdict.
//
// Each of the nine B.1 signals has a window (how far back it looks) and an
// aggregation over that window (last, min for "sustained for", mean for "rate
// over", p95/p99). The aggregate x is normalised to m ∈ [0,1] by a piecewise
// linear function anchored on the signal's warn and critical thresholds:
//
//	m(x) = d_warn · x/warn                                  for 0 ≤ x < warn
//	m(x) = d_warn + (d_crit−d_warn) · (x−warn)/(crit−warn)  for warn ≤ x < crit
//	m(x) = d_crit + (d_crit−d_warn) · (x−crit)/(crit−warn)  for x ≥ crit, capped at 1
//
// so that a host whose every signal sits exactly at its warn threshold scores
// d = d_warn, and one at every critical threshold scores d = d_crit. The
// divergence is d = Σ w_i·m_i / Σ w_i over the signals that are present and
// fresh (the B.3 weights, renormalised). A signal whose last sample is older
// than the stale limit is stale and left out; a host with no fresh weighted
// signal is blind: neither healthy nor a reason to fence.
//
// Signals marked as triggers (heartbeat lag by default, per B.5) make a host
// critical on their own when they cross the critical threshold. Execution
// incoherence (section 7 of the paper) is flagged when the control plane still
// says up/ACTIVE while d ≥ d_crit or a trigger is over its threshold.
package signals
