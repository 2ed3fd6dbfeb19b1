// Package hypervisor watches the management path of each compute host — the
// libvirt daemon — and decides whether live migration may run.
//
// A Probe keeps one persistent libvirt connection per host (with libvirt's
// event loop running, so keepalive works), times a few cheap RPCs each tick,
// and never lets a tick wait for a call that hangs: at most one probe is in
// flight per host, and a call still running after its timeout is counted as
// a timeout. A frozen daemon is detected by the call timeout; libvirt's own
// keepalive then closes the connection, and the probe reconnects when the
// daemon answers again. Probes produce libvirt_latency_p95_ms and
// libvirt_timeout_pct.
//
// The Gate allows live migration off a host only when the probe's latency and
// timeout rate are under their warn thresholds, the management path answered
// recently, and a destination exists whose own verdict is normal with
// headroom for the servers. Every answer says why, and is written to the
// audit sink.
package hypervisor
