// Package unit is the Unit aggregate: one edge unit, in stream
// "unit-<name>". Its pure Decide and Evolve run in the entity host as Kind.
//
// A unit is registered once (RegisterUnit) and may be decommissioned once
// (DecommissionUnit); a decommissioned unit refuses every command with
// ErrDecommissioned and its name is never reused. Names are subject-safe
// tokens (ValidateName): they appear in NATS subjects
// "<unit>.command.<method>.<domain>".
//
// The desired release is the pin if any, else the channel's release as last
// told to the unit. Decide emits UnitDesiredReleaseChanged after any event
// that changes it, so readers never recompute it.
//
// Remote commands (work for the unit's agent) go ISSUED -> DELIVERED ->
// SUCCEEDED | FAILED, or EXPIRED once their deadline passed, or CANCELLED
// on decommission. The state keeps pending commands (at most
// MaxPendingCommands) and the last MaxFinishedCommands finished ones.
//
// Conventions: a command that would change nothing yields no events and no
// error (setting a label to its value, a repeated ACK, a stale disconnect, a
// frequent heartbeat); refusals wrap a sentinel of this package and start
// with "unit <name>: ". Facts about other entities (a channel exists, a
// release is published and not yanked) come inside the command, filled by
// the caller, and Decide fails closed without them.
//
// Example:
//
//	s := unit.New("ship1")
//	evs, err := unit.Decide(s, &logbookv1.RegisterUnit{Platform: "linux/arm64"},
//		actors.Env{Now: time.Now(), Principal: "alice"})
//	if err != nil {
//		return err // e.g. errors.Is(err, unit.ErrAlreadyRegistered)
//	}
//	for _, e := range evs {
//		s = unit.Evolve(s, e)
//	}
package unit
