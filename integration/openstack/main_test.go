package openstack

import (
	"os"
	"testing"

	"github.com/fencedhq/fenced/integration/internal/stack"
)

var (
	compCtl string // the stack's compute-ctl
	imageID string
)

// TestMain brings the stack up once for the package (computes cn1 and cn2,
// report_interval 5 s, service_down_time 20 s) and down again.
func TestMain(m *testing.M) {
	os.Exit(stack.Main(m, stack.Options{Name: "integration/openstack"}, func(s *stack.Stack) {
		compCtl, imageID = s.Ctl, s.ImageID
	}))
}
