package nova_test

import (
	"context"
	"fmt"
	"time"

	"github.com/fencedhq/fenced/pkg/nova"
)

// Freeze a host whose heartbeat is late, fence it and evacuate its servers.
// (Compiled, not run: it needs a real Nova; see integration/openstack.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := nova.New(ctx, nova.Config{}) // OS_CLOUD or OS_* as for the openstack CLI
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := c.ServiceStatus(ctx, "compute-7")
	if err != nil || !st.LagCritical {
		return
	}
	if _, err := c.Disable(ctx, "compute-7", "heartbeat lag"); err != nil {
		return
	}
	if _, err := c.ForceDown(ctx, "compute-7", true); err != nil {
		return
	}
	vms, _ := c.ServersOnHost(ctx, "compute-7")
	for _, vm := range vms {
		ev, err := c.Evacuate(ctx, vm.ID, "") // the scheduler picks the target
		if err != nil {
			continue
		}
		_, _ = c.WaitEvacuation(ctx, ev)
	}
}
