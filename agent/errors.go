package agent

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrNoToken: the data directory holds no enrolment and no one-time
	// token was given, so the agent cannot obtain credentials.
	ErrNoToken = errors.New("agent: not enrolled and no enrolment token given")
	// ErrEnrolRejected: the control plane refused the enrolment (bad,
	// used or expired token). Retrying with the same token will not help.
	ErrEnrolRejected = errors.New("agent: enrolment rejected")
	// ErrCorruptIdentity: a file of the agent's identity (key or
	// enrolment) exists but cannot be read back. The error is an
	// *IdentityError naming the file.
	ErrCorruptIdentity = errors.New("agent: identity corrupt")
	// ErrUnitMismatch: the data directory belongs to another unit than the
	// one configured.
	ErrUnitMismatch = errors.New("agent: data directory belongs to another unit")
	// ErrClosed: the agent (or its spool) was closed.
	ErrClosed = errors.New("agent: closed")
)

// IdentityError names the identity file that could not be used.
type IdentityError struct {
	Path   string
	Reason string
}

func (e *IdentityError) Error() string {
	return fmt.Sprintf("%v: %s: %s (move the file away to enrol again with a new token)", ErrCorruptIdentity, e.Path, e.Reason)
}

// Unwrap returns ErrCorruptIdentity.
func (e *IdentityError) Unwrap() error { return ErrCorruptIdentity }

// refusal is why the agent refuses a command; its text goes into
// EdgeCommandAck.refusal and AgentCommandRefused.reason.
type refusal struct{ reason string }

func (r *refusal) Error() string { return "command refused: " + r.reason }

func refuse(format string, args ...any) error {
	return &refusal{reason: fmt.Sprintf(format, args...)}
}
