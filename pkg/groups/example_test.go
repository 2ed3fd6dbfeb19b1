package groups_test

import (
	"fmt"

	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// A host's group: the first group in file order that claims it, else the
// default group.
func Example() {
	m := groups.New([]groups.Def{
		{Name: "gpu", Aggregate: "gpu-hosts", Guard: playbook.GroupGuard{MaxConcurrent: 1}},
		{Name: "rack1", Hosts: []string{"cmp-0*", "cn1"}},
	}, groups.Nova{Aggregates: map[string][]string{"gpu-hosts": {"cmp-07", "gpu-1"}}}, 1)
	for _, h := range []string{"gpu-1", "cmp-07", "cmp-01", "cn9"} {
		fmt.Println(h, m.Of(h))
	}
	for _, c := range m.Conflicts(nil) {
		fmt.Println(c)
	}
	// Output:
	// gpu-1 gpu
	// cmp-07 gpu
	// cmp-01 rack1
	// cn9 default
	// cmp-07 is in groups gpu, rack1; gpu wins (first in file order)
}
