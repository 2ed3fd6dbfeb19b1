// Package policies holds the policy files that ship with fenced.
package policies

import _ "embed"

// Default is policies/default.yaml: the paper's thresholds and weights.
//
//go:embed default.yaml
var Default []byte
