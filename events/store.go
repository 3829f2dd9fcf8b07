package events

import (
	"context"
	"iter"
)

// Store is Logbook's event log. Implementations are safe for concurrent use
// and pass events/storetest.
//
// Iterators returned by the read methods stop at the first error they yield
// (a cancelled ctx, ErrClosed, a corruption); breaking out of the loop
// releases their resources.
type Store interface {
	// Append atomically appends events to stream if its current version
	// satisfies expect, and returns once they are durable. Either all
	// events are appended, contiguously in stream version and global
	// position, or none is.
	//
	// A failed expectation returns a *WrongExpectedVersionError. When every
	// event id is already in the log at exactly the place this call would
	// put it (same stream, consecutive versions, same order, consistent
	// with expect), Append returns the original result and appends
	// nothing; ids found anywhere else give ErrDuplicateEventID. Invalid
	// names or events give ErrInvalidStreamName or ErrInvalidEvent.
	Append(ctx context.Context, stream string, expect Expect, events ...Event) (AppendResult, error)

	// ReadStream yields the events of stream with version >= fromVersion,
	// in version order, up to the stream's version when the read starts.
	// A stream with no events yields ErrStreamNotFound.
	ReadStream(ctx context.Context, stream string, fromVersion uint64) iter.Seq2[Event, error]

	// ReadAll yields the events with position >= fromPosition that match
	// filter, in position order, up to the head when the read starts.
	ReadAll(ctx context.Context, fromPosition uint64, filter Filter) iter.Seq2[Event, error]

	// Subscribe yields the events with position >= fromPosition that match
	// filter: first those already in the log, then each new one once it is
	// durable, with no gap and no duplicate, until ctx is done or the store
	// closes (then it yields ctx.Err() or ErrClosed). A slow subscriber
	// falls behind; it never blocks Append.
	Subscribe(ctx context.Context, fromPosition uint64, filter Filter) iter.Seq2[Event, error]

	// Head returns the position and hash of the last durable event.
	Head(ctx context.Context) (Head, error)

	// SaveSnapshot stores snap for its stream, replacing any older one. A
	// snapshot at a version the stream has not reached is rejected with
	// ErrInvalidEvent.
	SaveSnapshot(ctx context.Context, snap Snapshot) error
	// LoadSnapshot returns the stream's latest snapshot or ErrSnapshotNotFound.
	LoadSnapshot(ctx context.Context, stream string) (Snapshot, error)

	// Verify walks the whole log, checking frames, positions and the hash
	// chain, and returns the verified head. The first failure is returned
	// as a *CorruptionError naming its position.
	Verify(ctx context.Context) (Head, error)

	// Close flushes and releases the store; it is idempotent. Calls after
	// Close return ErrClosed.
	Close() error
}
