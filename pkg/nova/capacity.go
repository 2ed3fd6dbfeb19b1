package nova

import (
	"context"
	"errors"
	"fmt"

	"github.com/gophercloud/gophercloud/v2/openstack/placement/v1/resourceproviders"
)

// ErrNoHypervisor is returned when no hypervisor belongs to the host.
var ErrNoHypervisor = errors.New("no hypervisor for host")

// Capacity is one host's CPU and memory overcommit as the control plane sees it.
type Capacity struct {
	Host         string
	HypervisorID string // also the placement resource provider UUID (>= 2.53)
	// Source is "placement" (allocation ratios, up to date) or "hypervisor"
	// (os-hypervisors at 2.87, lags behind, no ratios) when placement is missing.
	Source string

	PhysicalVCPUs    int     // C: VCPU total - reserved
	VCPUsAllocated   int     // V: VCPU used by allocations
	VCPURatio        float64 // allocation_ratio (0 if unknown)
	R1               float64 // V / C
	VCPUHeadroom     int     // C * ratio - V: vCPUs the scheduler may still place
	MemoryMB         int     // total - reserved
	MemoryMBUsed     int
	MemoryRatio      float64
	MemoryHeadroomMB int
}

// Capacity returns r1 = V/C and the free headroom of host.
func (c *Client) Capacity(ctx context.Context, host string) (Capacity, error) {
	var hvs []hypervisor
	err := c.call(ctx, "list_hypervisors", host, true, func(ctx context.Context) error {
		var err error
		hvs, err = listHypervisors287(ctx, c.compute)
		return err
	})
	if err != nil {
		return Capacity{}, fmt.Errorf("nova: capacity of %s: list hypervisors: %w", host, err)
	}
	var hv *hypervisor
	for i := range hvs {
		if hvs[i].Service.Host == host {
			hv = &hvs[i]
		}
	}
	if hv == nil {
		return Capacity{}, fmt.Errorf("nova: capacity of %s: %w", host, ErrNoHypervisor)
	}
	out := Capacity{Host: host, HypervisorID: hv.ID}
	if c.placement == nil {
		out.Source = "hypervisor"
		out.PhysicalVCPUs, out.VCPUsAllocated = hv.VCPUs, hv.VCPUsUsed
		out.MemoryMB, out.MemoryMBUsed = hv.MemoryMB, hv.MemoryMBUsed
		out.VCPUHeadroom = hv.VCPUs - hv.VCPUsUsed
		out.MemoryHeadroomMB = hv.MemoryMB - hv.MemoryMBUsed
	} else {
		var inv *resourceproviders.ResourceProviderInventories
		var use *resourceproviders.ResourceProviderUsage
		err := c.call(ctx, "get_placement", host, true, func(ctx context.Context) error {
			var err error
			if inv, err = resourceproviders.GetInventories(ctx, c.placement, hv.ID).Extract(); err != nil {
				return err
			}
			use, err = resourceproviders.GetUsages(ctx, c.placement, hv.ID).Extract()
			return err
		})
		if err != nil {
			return Capacity{}, fmt.Errorf("nova: capacity of %s: placement provider %s: %w", host, hv.ID, err)
		}
		out.Source = "placement"
		v := inv.Inventories["VCPU"]
		out.PhysicalVCPUs = v.Total - v.Reserved
		out.VCPUsAllocated = use.Usages["VCPU"]
		out.VCPURatio = float64(v.AllocationRatio)
		out.VCPUHeadroom = int(float64(out.PhysicalVCPUs)*out.VCPURatio) - out.VCPUsAllocated
		m := inv.Inventories["MEMORY_MB"]
		out.MemoryMB = m.Total - m.Reserved
		out.MemoryMBUsed = use.Usages["MEMORY_MB"]
		out.MemoryRatio = float64(m.AllocationRatio)
		out.MemoryHeadroomMB = int(float64(out.MemoryMB)*out.MemoryRatio) - out.MemoryMBUsed
	}
	if out.PhysicalVCPUs > 0 {
		out.R1 = float64(out.VCPUsAllocated) / float64(out.PhysicalVCPUs)
	}
	return out, nil
}
