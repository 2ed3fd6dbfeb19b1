package nova_test

import (
	"github.com/fencedhq/fenced/pkg/nova"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// *nova.ControlPlane is the playbook's control plane.
var _ playbook.ControlPlane = (*nova.ControlPlane)(nil)
