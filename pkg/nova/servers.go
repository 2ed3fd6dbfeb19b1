package nova

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// Server is what fenced needs to know about one instance.
type Server struct {
	ID        string
	Name      string
	TenantID  string
	Host      string
	Status    string // ACTIVE, SHUTOFF, MIGRATING, ERROR, ...
	TaskState string // "" when no task runs
	VMState   string
	// PowerState is Nova's power_state by name: NOSTATE, RUNNING, PAUSED,
	// SHUTDOWN, CRASHED, SUSPENDED.
	PowerState string
	Updated    time.Time
	// The flavor as the server body embeds it (>= 2.47, always true at the
	// pinned microversion): its size, its name at boot and its extra specs
	// (nil unless policy lets the caller read them; admin can).
	VCPUs            int
	RAMMB            int
	FlavorName       string
	FlavorExtraSpecs map[string]string
	// ImageID is the image the server was booted from; "" for a server
	// booted from a volume.
	ImageID string
}

func powerStateName(p int) string {
	switch p {
	case 0:
		return "NOSTATE"
	case 1:
		return "RUNNING"
	case 3:
		return "PAUSED"
	case 4:
		return "SHUTDOWN"
	case 6:
		return "CRASHED"
	case 7:
		return "SUSPENDED"
	}
	return fmt.Sprintf("UNKNOWN(%d)", p)
}

func toServer(s servers.Server) Server {
	out := Server{ID: s.ID, Name: s.Name, TenantID: s.TenantID, Host: s.Host, Status: s.Status,
		TaskState: s.TaskState, VMState: s.VmState, PowerState: powerStateName(int(s.PowerState)), Updated: s.Updated}
	out.VCPUs, out.RAMMB, out.FlavorName, out.FlavorExtraSpecs = embeddedFlavor(s.Flavor)
	if id, ok := s.Image["id"].(string); ok {
		out.ImageID = id
	}
	return out
}

// embeddedFlavor reads the flavor object of a server body at >= 2.47:
// {"vcpus": 2, "ram": 4096, "original_name": "m1.medium", "extra_specs": {...}, ...}.
// gophercloud decodes it as a generic map, so numbers arrive as float64.
func embeddedFlavor(f map[string]any) (vcpus, ramMB int, name string, extra map[string]string) {
	num := func(v any) int {
		if x, ok := v.(float64); ok {
			return int(x)
		}
		return 0
	}
	vcpus, ramMB = num(f["vcpus"]), num(f["ram"])
	name, _ = f["original_name"].(string)
	if es, ok := f["extra_specs"].(map[string]any); ok {
		extra = make(map[string]string, len(es))
		for k, v := range es {
			if sv, ok := v.(string); ok {
				extra[k] = sv
			} else {
				extra[k] = fmt.Sprint(v)
			}
		}
	}
	return vcpus, ramMB, name, extra
}

// ServersOnHost lists the servers of every tenant on host.
func (c *Client) ServersOnHost(ctx context.Context, host string) ([]Server, error) {
	var out []Server
	err := c.call(ctx, "list_servers", host, true, func(ctx context.Context) error {
		pages, err := servers.List(c.compute, servers.ListOpts{Host: host, AllTenants: true}).AllPages(ctx)
		if err != nil {
			return err
		}
		ss, err := servers.ExtractServers(pages)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, s := range ss {
			if s.Host == host { // the host filter is admin-only; never trust a wider answer
				out = append(out, toServer(s))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nova: list servers on %s: %w", host, err)
	}
	return out, nil
}

// GetServer returns one server.
func (c *Client) GetServer(ctx context.Context, id string) (Server, error) {
	var out Server
	err := c.call(ctx, "get_server", "", true, func(ctx context.Context) error {
		s, err := servers.Get(ctx, c.compute, id).Extract()
		if err != nil {
			return err
		}
		out = toServer(*s)
		return nil
	})
	if err != nil {
		return Server{}, fmt.Errorf("nova: get server %s: %w", id, err)
	}
	return out, nil
}

// StartServer powers on a SHUTOFF server (os-start).
func (c *Client) StartServer(ctx context.Context, id string) error {
	err := c.call(ctx, "start_server", "", false, func(ctx context.Context) error {
		return servers.Start(ctx, c.compute, id).ExtractErr()
	})
	if err != nil {
		return fmt.Errorf("nova: start server %s: %w", id, err)
	}
	return nil
}

// ActiveServers lists the names of the servers of every tenant that Nova
// reports ACTIVE, by host: what the control plane claims runs where.
func (c *Client) ActiveServers(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	err := c.call(ctx, "list_servers", "", true, func(ctx context.Context) error {
		pages, err := servers.List(c.compute, servers.ListOpts{AllTenants: true, Status: "ACTIVE"}).AllPages(ctx)
		if err != nil {
			return err
		}
		ss, err := servers.ExtractServers(pages)
		if err != nil {
			return err
		}
		clear(out)
		for _, s := range ss {
			if s.Status == "ACTIVE" && s.Host != "" {
				name := s.Name
				if name == "" {
					name = s.ID
				}
				out[s.Host] = append(out[s.Host], name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nova: list active servers: %w", err)
	}
	for _, names := range out {
		sort.Strings(names)
	}
	return out, nil
}
