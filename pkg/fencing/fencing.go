// Package fencing declares out-of-band power fencing: the Fencer interface
// and the error classes every implementation reports. pkg/fencing/redfish
// implements it with gofish.
package fencing

import (
	"context"
	"errors"
)

// PowerState is what a BMC reports.
type PowerState string

// Power states (Redfish names).
const (
	On          PowerState = "On"
	Off         PowerState = "Off"
	PoweringOn  PowerState = "PoweringOn"
	PoweringOff PowerState = "PoweringOff"
	Unknown     PowerState = "Unknown"
)

// Reached reports whether a BMC reading st shows that a power action
// ("power_off" or "power_on") has taken effect: Off for a power-off, On for
// a power-on. A state in transition (PoweringOn, PoweringOff) or Unknown
// shows neither, so a new leader reconciling an intent never counts it done.
func Reached(action string, st PowerState) bool {
	switch action {
	case "power_off":
		return st == Off
	case "power_on":
		return st == On
	}
	return false
}

// Errors, to be matched with errors.Is.
var (
	// ErrUnreachable: the BMC did not answer. The power state is unknown —
	// never assume a host is off because its BMC is silent.
	ErrUnreachable = errors.New("fencing: BMC unreachable; power state unknown")
	// ErrAuth: the BMC refused the credentials. Not retried.
	ErrAuth = errors.New("fencing: BMC refused the credentials")
	// ErrNeedsHuman: the BMC accepted the reset but the power state never
	// reached the expected value within the verification timeout.
	ErrNeedsHuman = errors.New("fencing: power state not verified; a person must check the host")
	// ErrUnsupported: the BMC does not offer the reset type the policy asks for.
	ErrUnsupported = errors.New("fencing: reset type not offered by the BMC")
	// ErrUnknownHost: the host is not in the BMC inventory.
	ErrUnknownHost = errors.New("fencing: host not in the BMC inventory")
)

// Fencer powers hosts off and on out of band. Every method returns only
// once the BMC's power state verified the result.
type Fencer interface {
	PowerOff(ctx context.Context, host string) error
	PowerOn(ctx context.Context, host string) error
	PowerCycle(ctx context.Context, host string) error
	PowerState(ctx context.Context, host string) (PowerState, error)
}
