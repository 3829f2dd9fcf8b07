package events

import (
	"errors"
	"fmt"
)

// Sentinel errors. Back-ends wrap them with context; test with errors.Is.
var (
	// ErrWrongExpectedVersion: the stream's version did not satisfy the
	// Expect of an Append. The error is a *WrongExpectedVersionError that
	// carries the actual version; nothing was appended.
	ErrWrongExpectedVersion = errors.New("wrong expected version")
	// ErrStreamNotFound: a read named a stream that has no events.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrSnapshotNotFound: the stream has no snapshot.
	ErrSnapshotNotFound = errors.New("snapshot not found")
	// ErrClosed: the store was closed; it answers every call with this error.
	ErrClosed = errors.New("store closed")
	// ErrInvalidStreamName: the stream name is not "<category>-<id>"; see ValidateStream.
	ErrInvalidStreamName = errors.New("invalid stream name")
	// ErrInvalidEvent: an event given to Append is malformed (zero id,
	// missing type, too large, no events at all); nothing was appended.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrDuplicateEventID: an event id given to Append is already in the log
	// somewhere other than the place this Append would put it. Re-appending
	// the same ids at the same place is not an error: it returns the
	// original result.
	ErrDuplicateEventID = errors.New("duplicate event id")
	// ErrCorrupt: the log failed an integrity check. The error is a
	// *CorruptionError naming the first bad position.
	ErrCorrupt = errors.New("log corrupt")
	// ErrUnknownType: a payload type is not in the Registry.
	ErrUnknownType = errors.New("unknown event type")
)

// WrongExpectedVersionError reports a failed optimistic-concurrency check.
type WrongExpectedVersionError struct {
	Stream   string
	Expected Expect
	// Actual is the stream's current version (0: the stream has no events).
	Actual uint64
}

func (e *WrongExpectedVersionError) Error() string {
	return fmt.Sprintf("append to %s: expected %s, stream is at version %d: %v",
		e.Stream, e.Expected, e.Actual, ErrWrongExpectedVersion)
}

// Unwrap returns ErrWrongExpectedVersion.
func (e *WrongExpectedVersionError) Unwrap() error { return ErrWrongExpectedVersion }

// CorruptionError names the first position at which the log fails an
// integrity check (a torn frame in the middle of the log, a checksum
// mismatch, a broken hash chain).
type CorruptionError struct {
	Position uint64
	Reason   string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("%v at position %d: %s", ErrCorrupt, e.Position, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }
