package hostname

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"cmp-017", "lab-007", "cn1", "h", "compute-1.example.org", "node_3", "CMP9"} {
		if err := Check(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "{host}", "x\ny", "x\x1b[31m", "cmp\u202e710", "-x", ".x", "é", strings.Repeat("a", 254), "a\tb", "a\x00"} {
		err := Check(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if strings.ContainsAny(err.Error(), "\n\x1b\t\x00\u202e") || len(err.Error()) > 400 {
			t.Errorf("%q: the error carries the raw name: %q", bad, err)
		}
	}
}
