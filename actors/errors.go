package actors

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Sentinel errors of the host. Errors returned by Execute and Read wrap them
// (or the store's and the kind's own errors) with context; test with
// errors.Is.
var (
	// ErrUnknownCategory: the stream's category has no registered Kind.
	ErrUnknownCategory = errors.New("unknown entity category")
	// ErrInvalidKind: Register was given an incomplete Kind or a category
	// that is already registered.
	ErrInvalidKind = errors.New("invalid kind")
	// ErrClosed: the host was closed; it answers every later call with
	// this error.
	ErrClosed = errors.New("entity host closed")
	// ErrConflict: other writers kept appending to the entity's stream
	// while it decided, and the command was still refused by the store's
	// expected-version check after the configured number of retries.
	// Nothing was appended. The error also wraps
	// events.ErrWrongExpectedVersion.
	ErrConflict = errors.New("conflicting writers")
	// ErrEntityPanicked: the kind's Decide or Evolve panicked (or the
	// entity failed to recover its state because Evolve panicked). The
	// entity restarts and recovers from the log before its next command.
	ErrEntityPanicked = errors.New("entity panicked")
	// ErrNotExecuted: the caller's ctx ended before the entity started on
	// the command (or read), which was dropped: nothing was decided or
	// appended. The error also wraps ctx.Err().
	ErrNotExecuted = errors.New("command not executed")
	// ErrOutcomeUnknown: the caller's ctx ended after the entity had
	// started on the command; the command runs to completion and may
	// have appended events. The error also wraps ctx.Err().
	ErrOutcomeUnknown = errors.New("command outcome unknown")
)

// RefusedError is the error Execute returns when the kind's Decide refused
// the command: nothing was appended. Err is Decide's error, which the
// error unwraps to, so errors.Is tests the kind's sentinels through it.
// Err's message is the refusal's reason meant for the caller; Error adds
// the stream and the command.
type RefusedError struct {
	// Stream is the entity's stream.
	Stream string
	// Command is the full name of the refused command's message type.
	Command protoreflect.FullName
	// Err is the error Decide returned.
	Err error
}

// Error returns "actors: <stream> refused <command>: <Err>".
func (e *RefusedError) Error() string {
	return fmt.Sprintf("actors: %s refused %s: %v", e.Stream, e.Command, e.Err)
}

// Unwrap returns Err.
func (e *RefusedError) Unwrap() error { return e.Err }
