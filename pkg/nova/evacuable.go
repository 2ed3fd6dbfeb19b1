package nova

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/aggregates"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
)

// Evacuable selects the servers fenced may evacuate, as other HA tools do
// with a tag on the flavor, the image or the host's aggregate. Each field is
// "key=value"; a server matching any configured field is evacuable. With no
// field set every server is evacuable. Values compare case-insensitively
// ("True" matches "true"), keys exactly.
type Evacuable struct {
	// FlavorExtraSpec is matched against the extra specs of the flavor
	// embedded in the server body (the flavor as it was at boot).
	FlavorExtraSpec string
	// ImageProperty is matched against the properties of the server's image
	// in glance (GET /v2/images/{id}). A server booted from a volume has no
	// image and never matches (volume_image_metadata is not read); a deleted
	// image never matches.
	ImageProperty string
	// AggregateMetadata is matched against the metadata of the host
	// aggregates (os-aggregates) the server's host belongs to; a match makes
	// every server of that host evacuable.
	AggregateMetadata string
}

// ErrNoImageService: the image property filter is configured but the catalog
// has no image (glance) endpoint.
var ErrNoImageService = errors.New("evacuable image property filter configured but no image service")

// Configured reports whether any filter is set.
func (e Evacuable) Configured() bool {
	return e.FlavorExtraSpec != "" || e.ImageProperty != "" || e.AggregateMetadata != ""
}

// Validate checks that every set field is "key=value" with a non-empty key.
func (e Evacuable) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"flavor extra spec", e.FlavorExtraSpec}, {"image property", e.ImageProperty}, {"aggregate metadata", e.AggregateMetadata}} {
		if f.v == "" {
			continue
		}
		if _, _, err := parseKV(f.v); err != nil {
			return fmt.Errorf("nova: evacuable %s: %w", f.name, err)
		}
	}
	return nil
}

func parseKV(s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !ok || k == "" {
		return "", "", fmt.Errorf("%q is not key=value", s)
	}
	return k, v, nil
}

// matchKV reports whether m holds key with value (case-insensitive value).
func matchKV(kv string, m map[string]string) bool {
	k, v, err := parseKV(kv)
	if err != nil {
		return false
	}
	got, ok := m[k]
	return ok && strings.EqualFold(strings.TrimSpace(got), v)
}

// evacuableSet says, for each server of host, whether it is evacuable. The
// aggregate lookup is one os-aggregates list; the flavor check is free (the
// flavor is embedded); glance is asked once per distinct image, and only
// for servers nothing else matched.
func (c *Client) evacuableSet(ctx context.Context, host string, e Evacuable, imageSC *gophercloud.ServiceClient, ss []Server) (map[string]bool, error) {
	out := make(map[string]bool, len(ss))
	if !e.Configured() {
		for _, s := range ss {
			out[s.ID] = true
		}
		return out, nil
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if e.AggregateMetadata != "" && len(ss) > 0 {
		hit, err := c.hostAggregateMatches(ctx, host, e.AggregateMetadata)
		if err != nil {
			return nil, err
		}
		if hit {
			for _, s := range ss {
				out[s.ID] = true
			}
			return out, nil
		}
	}
	props := map[string]map[string]string{} // image id -> properties (nil: none)
	for _, s := range ss {
		if e.FlavorExtraSpec != "" && matchKV(e.FlavorExtraSpec, s.FlavorExtraSpecs) {
			out[s.ID] = true
			continue
		}
		out[s.ID] = false
		if e.ImageProperty == "" || s.ImageID == "" {
			continue
		}
		p, seen := props[s.ImageID]
		if !seen {
			if imageSC == nil {
				return nil, fmt.Errorf("nova: server %s: %w", s.ID, ErrNoImageService)
			}
			var err error
			if p, err = c.imageProperties(ctx, imageSC, s.ImageID); err != nil {
				return nil, err
			}
			props[s.ImageID] = p
		}
		out[s.ID] = matchKV(e.ImageProperty, p)
	}
	return out, nil
}

func (c *Client) hostAggregateMatches(ctx context.Context, host, kv string) (bool, error) {
	aggs, err := c.listAggregates(ctx, host)
	if err != nil {
		return false, fmt.Errorf("nova: aggregates of %s: %w", host, err)
	}
	for _, a := range aggs {
		for _, h := range a.Hosts {
			if h == host && matchKV(kv, a.Metadata) {
				return true, nil
			}
		}
	}
	return false, nil
}

// Aggregate is one host aggregate: its name, availability zone and hosts.
type Aggregate struct {
	Name             string
	AvailabilityZone string
	Hosts            []string
}

// Aggregates lists every host aggregate (os-aggregates; the groups of the
// run config read their membership from it).
func (c *Client) Aggregates(ctx context.Context) ([]Aggregate, error) {
	aggs, err := c.listAggregates(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("nova: list aggregates: %w", err)
	}
	out := make([]Aggregate, 0, len(aggs))
	for _, a := range aggs {
		out = append(out, Aggregate{Name: a.Name, AvailabilityZone: a.AvailabilityZone, Hosts: a.Hosts})
	}
	return out, nil
}

// listAggregates is one os-aggregates list (host: for the call's log line).
func (c *Client) listAggregates(ctx context.Context, host string) ([]aggregates.Aggregate, error) {
	var aggs []aggregates.Aggregate
	err := c.call(ctx, "list_aggregates", host, true, func(ctx context.Context) error {
		pages, err := aggregates.List(c.compute).AllPages(ctx)
		if err != nil {
			return err
		}
		aggs, err = aggregates.ExtractAggregates(pages)
		return err
	})
	return aggs, err
}

// imageProperties reads an image's properties from glance v2 (where they are
// the image's top-level keys beyond the standard ones). A missing image has
// none.
func (c *Client) imageProperties(ctx context.Context, sc *gophercloud.ServiceClient, id string) (map[string]string, error) {
	var img *images.Image
	err := c.call(ctx, "get_image", "", true, func(ctx context.Context) error {
		var err error
		img, err = images.Get(ctx, sc, id).Extract()
		return err
	})
	if gophercloud.ResponseCodeIs(err, 404) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nova: image %s properties: %w", id, err)
	}
	out := make(map[string]string, len(img.Properties))
	for k, v := range img.Properties {
		if sv, ok := v.(string); ok {
			out[k] = sv
		} else {
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}
