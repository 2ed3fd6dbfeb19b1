// Package hostname is the one rule for the host names fenced accepts,
// wherever they enter: the API's paths, traces, the run config. A host name
// is what Nova calls a compute (its service's host): letters, digits, '.',
// '-' and '_', starting with a letter or digit, at most 253 bytes (a DNS
// name's limit). Nothing else, so no name can carry a control character, a
// bidi override, a space, a path separator or a template brace into a log, a
// table or a URL.
package hostname

import (
	"fmt"

	"github.com/fencedhq/fenced/internal/escape"
)

// MaxLen is the longest host name accepted.
const MaxLen = 253

// Check says why name is not a host name, or returns nil.
func Check(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty host name")
	case len(name) > MaxLen:
		return fmt.Errorf("host name %s longer than %d bytes", escape.Excerpt(name, 64), MaxLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '-' && c != '_') {
			return fmt.Errorf("%s is not a host name (letters, digits, '.', '-', '_', starting with a letter or digit)", escape.Excerpt(name, escape.ExcerptLen))
		}
	}
	return nil
}
