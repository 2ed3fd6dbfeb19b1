// Package detection measures fenced's detection and recovery against a real
// Nova at Nova's defaults (report_interval 10 s, service_down_time 60 s), and
// its recovery against Masakari's on the same stack. The short variant
// (FENCED_DETECTION_TRIALS unset) runs Nova at half of each (5 s, 30 s):
// the same assertions in half the wait for Nova's `down`.
//
// The world (TestMain): the real Nova of integration/internal/stack with
// three fake-driver computes cn1, cn2 and cn3, a real libvirtd (test driver)
// beside each, and the Redfish BMC simulator (`fenced lab bmc`) whose power
// is bound to the computes (--power-hook compute-ctl power). Every trial
// starts its own `fenced run --config` replica (tick 2 s, an embedded etcd
// of its own, nova.report_interval as Nova's, the default policy but for
// storm_guard.saturation_fraction 0.5: one bad host of three is not a
// saturated cluster) and stops it at the end, so trials do not inherit one
// another's cool-downs and power-cycle history.
//
// Scenarios, FENCED_DETECTION_TRIALS trials each (default 1, the short
// variant `make test` runs; `make detection` runs 5):
//
//  1. TestFrozenHost: nova-compute and libvirtd SIGSTOPped (compute-ctl
//     freeze). Time from the freeze to fenced's first state at or beyond
//     critical, and to Nova's `down`; fenced runs in observe mode, so it
//     writes nothing to Nova and Nova's `down` is Nova's own. Fails unless
//     critical comes first.
//  2. TestAgentDown: only nova-compute SIGKILLed (libvirt and the servers
//     fine), fenced in auto mode. Fails on any force_down, migration,
//     evacuation or power action, and unless the verdict says agent failure.
//  3. TestGrayFailure: libvirtd under a cgroup v1 CPU quota while
//     nova-compute heartbeats. Time to warn or critical; Nova polled for `up`.
//  4. TestWholeHostRecovery (only when FENCED_DETECTION_TRIALS is set):
//     three servers on cn1, cn1 frozen; time until every server is ACTIVE on
//     another host, for Masakari (Debian's masakari-api and masakari-engine,
//     every setting at its default, notified as its host monitor would:
//     COMPUTE_HOST, STOPPED) and, in separate trials, for fenced in auto
//     mode (after_fence: evacuate). It is in compare_test.go so that it
//     runs first: a Masakari that does not come up shows within minutes.
//
// Every trial prints a FIGURE line; with FENCED_DETECTION_FIGURES=FILE they
// are appended to FILE, and each test ends with a Markdown table of its
// trials. FENCED_DETECTION_BIN runs a prebuilt fenced instead of building
// this tree.
package detection
