package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
)

// Replayed is an entity's state rebuilt from its stream by Host.Replay.
type Replayed struct {
	// Stream is the entity's stream.
	Stream string
	// State is the entity's state after Last (Kind.New's state when no
	// event was applied). The caller owns it.
	State proto.Message
	// Last is the last event folded into State; its Version is 0 when
	// none was.
	Last events.Event
	// Next is the first event of the stream that was not folded, because
	// keep refused it; its Version is 0 when the whole stream was folded.
	Next events.Event
}

// Categories returns the categories of the registered kinds, sorted.
func (h *Host) Categories() []string {
	h.kindsMu.RLock()
	defer h.kindsMu.RUnlock()
	out := make([]string, 0, len(h.kinds))
	for c := range h.kinds {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Replay rebuilds the state of stream's entity as it was at some point of
// its history: it reads the stream from its first event and folds events
// into Kind.New's state with the kind's Evolve, in version order, for as
// long as keep accepts them. The first event keep refuses is not folded,
// and neither is any later one; a nil keep folds the whole stream (up to
// its version when the read starts).
//
// Replay is for audits and tools: it reads the store directly, ignores
// snapshots (they only hold the latest state), and neither activates the
// entity nor orders itself with its commands. Events of types the kind
// does not register are skipped, as on recovery.
//
// Errors: events.ErrInvalidStreamName; ErrUnknownCategory when no kind is
// registered for the stream's category (see Categories);
// events.ErrStreamNotFound when the stream has no events; ErrEntityPanicked
// when Evolve panicked; ErrClosed; and read or decode errors of the store.
func (h *Host) Replay(ctx context.Context, stream string, keep func(events.Event) bool) (Replayed, error) {
	if h.closed.Load() {
		return Replayed{}, ErrClosed
	}
	category, id, err := events.SplitStream(stream)
	if err != nil {
		return Replayed{}, fmt.Errorf("actors: %w", err)
	}
	h.kindsMu.RLock()
	kind := h.kinds[category]
	h.kindsMu.RUnlock()
	if kind == nil {
		return Replayed{}, fmt.Errorf("actors: %s: %w %q", stream, ErrUnknownCategory, category)
	}
	out := Replayed{Stream: stream, State: kind.New(id)}
	if out.State == nil {
		return Replayed{}, fmt.Errorf("actors: %s: New returned nil", stream)
	}
	for ev, err := range h.store.ReadStream(ctx, stream, 1) {
		if err != nil {
			return Replayed{}, fmt.Errorf("actors: replay %s: %w", stream, err)
		}
		if keep != nil && !keep(ev) {
			out.Next = ev
			break
		}
		m, err := kind.registry.Decode(ev)
		switch {
		case errors.Is(err, events.ErrUnknownType):
		case err != nil:
			return Replayed{}, fmt.Errorf("actors: replay %s: %w", stream, err)
		default:
			if out.State, err = evolveSafely(kind.Kind, out.State, m); err != nil {
				return Replayed{}, fmt.Errorf("actors: replay %s at version %d: %w", stream, ev.Version, err)
			}
		}
		out.Last = ev
	}
	return out, nil
}

// evolveSafely calls k.Evolve, turning a panic into ErrEntityPanicked.
func evolveSafely(k Kind, state, event proto.Message) (next proto.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: Evolve: %v", ErrEntityPanicked, p)
		}
	}()
	return k.Evolve(state, event), nil
}
