// Package production runs fenced end to end against real daemons the way it
// runs in production: a real Nova (integration/internal/stack) with three
// fake-driver computes cn1, cn2 and cn3, a real libvirtd (test driver) beside
// each compute, the Redfish BMC simulator (`fenced lab bmc`) whose power is
// bound to the computes' processes (--power-hook compute-ctl power: Off kills
// nova-compute and libvirtd of the host, On starts them again), a
// three-member etcd cluster, and two `fenced run --config` replicas.
//
// TestMain brings the world up once; every test leaves it as it found it:
// computes thawed, running, up and enabled, powered on, its servers deleted.
// A hypervisor that stops executing is a SIGSTOP of its nova-compute and
// libvirtd (compute-ctl freeze).
package production
