package projections

import (
	"errors"
	"fmt"
)

// Sentinel errors. Sinks and the runner wrap them with context; test with
// errors.Is.
var (
	// ErrNotReady: the projection has not yet caught up, since the runner
	// started, to the head of the log it saw at start, and no earlier
	// version is serving. An API answers 503 while a read model returns it.
	ErrNotReady = errors.New("projection not ready")
	// ErrUnknownProjection: the runner or sink has no projection of that name.
	ErrUnknownProjection = errors.New("unknown projection")
	// ErrNoVersion: no version of the projection is current yet (it has
	// never caught up once); readers get it from Sink.View and Sink.Current.
	ErrNoVersion = errors.New("no current projection version")
	// ErrInvalidName: a projection or table name is not a safe SQL
	// identifier; see ValidateName.
	ErrInvalidName = errors.New("invalid projection name")
	// ErrStaleVersion: the sink already serves a newer version of the
	// projection than the one the runner was given; the runner refuses to
	// run an older version over it.
	ErrStaleVersion = errors.New("projection version older than current")
	// ErrCheckpointMismatch: Apply found a stored checkpoint different from
	// the one the caller started from: another runner is feeding the same
	// projection version. Nothing was written.
	ErrCheckpointMismatch = errors.New("projection checkpoint moved")
	// ErrPoison: an event cannot be handled however often it is retried
	// (an undecodable payload). The runner stops the projection with a
	// *EventError naming its position. Handlers mark such errors with
	// Poison; decode errors of the protobuf module (proto.Error),
	// events.ErrUnknownType and encoding/json syntax and type errors are
	// recognised without it.
	ErrPoison = errors.New("poison event")
	// ErrNoRows: QueryRow found no row.
	ErrNoRows = errors.New("no rows in result set")
	// ErrUnknownScheme: OpenSink was given a URL whose scheme no sink
	// registered.
	ErrUnknownScheme = errors.New("unknown sink scheme")
	// ErrBadURL: a sink URL could not be parsed or lacks a required part.
	ErrBadURL = errors.New("bad sink URL")
	// ErrClosed: the runner or sink was closed.
	ErrClosed = errors.New("projections closed")
	// ErrStopped: the projection stopped for good (a poison event); its
	// Status carries the cause.
	ErrStopped = errors.New("projection stopped")
	// ErrRebuilding: Rebuild was asked for a projection that is still
	// building a new version after a version bump at start; wait until it
	// is live.
	ErrRebuilding = errors.New("projection rebuilding")
)

// EventError is a handler failure pinned to one event of the log.
type EventError struct {
	Projection string
	Version    int
	// Generation is the generation of Version being fed (see
	// VersionOfGeneration).
	Generation int
	Position   uint64
	Stream     string
	Type       string
	Err        error
}

func (e *EventError) Error() string {
	return fmt.Sprintf("projection %s v%d: event at position %d (stream %s, type %s): %v",
		e.Projection, e.Version, e.Position, e.Stream, e.Type, e.Err)
}

// Unwrap returns the handler's error.
func (e *EventError) Unwrap() error { return e.Err }

// Poison marks err as permanent: retrying the event cannot succeed. The
// result wraps both ErrPoison and err.
func Poison(err error) error {
	if err == nil {
		return nil
	}
	return &poisonError{err}
}

type poisonError struct{ err error }

func (p *poisonError) Error() string   { return fmt.Sprintf("%v: %v", ErrPoison, p.err) }
func (p *poisonError) Unwrap() []error { return []error{ErrPoison, p.err} }
