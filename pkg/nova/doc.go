// Package nova is fenced's view of the OpenStack control plane: the Nova
// compute API (and placement for capacity) through gophercloud v2.
//
// A *Client authenticates like the openstack CLI (OS_CLOUD + clouds.yaml, or
// the OS_* variables), picks the region and interface, negotiates the compute
// microversion once and pins it, and gives every call a per-attempt timeout
// with retries and backoff inside the caller's deadline.
//
// What the playbook needs:
//
//	ServiceStatus / Services   nova-compute state, forced_down, heartbeat lag
//	Disable / Enable           freeze or release scheduling (reason names fenced)
//	ForceDown                  fence in the control plane (true) or undo it (false)
//	ServersOnHost              every tenant's servers on a host
//	LiveMigrate + WaitMigration + AbortMigration
//	Evacuate + WaitEvacuation  only after ForceDown; STOPPED result at >= 2.95
//	Migrations                 os-migrations
//	Capacity                   r1 = V/C and free headroom from placement
//
// updated_at is not a heartbeat: every admin PUT bumps it. The client
// remembers the updated_at its own writes produced and leaves them out when it
// computes heartbeat lag, so a Disable of a dead host does not make it look
// alive again.
//
// The gophercloud v2.15.0 gaps this package works around are all in
// workarounds.go.
package nova
