package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

const edgeEventType = "logbook.v1.EdgeEvent"

// Spool is the agent's outbox: every unit event is appended here first, as
// an EdgeEvent in the stream "outbox-<unit>" of an embedded store that holds
// nothing else, so an event's spool position (its seq) is both its stream
// version and its global position: dense, starting at 1.
//
// An event leaves the spool when the control plane acknowledges it: Ack
// advances the "acked" checkpoint, a small file replaced atomically. The log
// itself is append-only; the checkpoint is what "removed" means.
//
// Append and the read methods are safe for concurrent use; Ack is meant for
// the one sender.
type Spool struct {
	store   *embedded.Store
	stream  string
	unit    string
	ackPath string
	logger  *slog.Logger

	head   atomic.Uint64
	acked  atomic.Uint64
	ackMu  sync.Mutex
	notify chan struct{}
}

type spoolCheckpoint struct {
	Acked uint64 `json:"acked"`
}

// OpenSpool opens (creating if needed) the spool store in dir and its
// checkpoint file ackPath.
func OpenSpool(ctx context.Context, dir, ackPath, unit string, logger *slog.Logger) (*Spool, error) {
	if logger == nil {
		logger = slog.Default()
	}
	store, err := embedded.Open(ctx, dir, embedded.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{store: store, stream: "outbox-" + unit, unit: unit, ackPath: ackPath, logger: logger,
		notify: make(chan struct{}, 1)}
	h, err := store.Head(ctx)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s.head.Store(h.Position)
	var cp spoolCheckpoint
	switch err := readJSON(ackPath, &cp); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		store.Close()
		return nil, fmt.Errorf("open spool checkpoint: %w", err)
	}
	if cp.Acked > h.Position {
		logger.Warn("spool checkpoint is ahead of the spool (spool removed?); resending from the spool's head",
			"acked", cp.Acked, "head", h.Position)
		cp.Acked = h.Position
	}
	s.acked.Store(cp.Acked)
	return s, nil
}

// Append spools evs atomically and durably, in order, and returns the seq of
// the last. It fills each event's unit, a new UUIDv7 id when it has none,
// and the time when it has none; seq is assigned by position and set when
// the event is read back.
func (s *Spool) Append(ctx context.Context, evs ...*logbookv1.EdgeEvent) (uint64, error) {
	batch := make([]events.Event, len(evs))
	for i, e := range evs {
		e.Unit = s.unit
		e.Seq = 0
		if len(e.Id) == 0 {
			id := events.NewID()
			e.Id = id[:]
		}
		if e.Time == nil {
			e.Time = timestamppb.Now()
		}
		data, err := proto.Marshal(e)
		if err != nil {
			return 0, err
		}
		batch[i] = events.Event{Type: edgeEventType, Data: data, Time: e.Time.AsTime()}
		copy(batch[i].ID[:], e.Id)
	}
	res, err := s.store.Append(ctx, s.stream, events.Any, batch...)
	if err != nil {
		if errors.Is(err, events.ErrClosed) {
			err = fmt.Errorf("%w: %v", ErrClosed, err)
		}
		return 0, fmt.Errorf("spool: %w", err)
	}
	for {
		h := s.head.Load()
		if res.LastPosition <= h || s.head.CompareAndSwap(h, res.LastPosition) {
			break
		}
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return res.LastPosition, nil
}

// Emit spools one event carrying msg for method and domain.
func (s *Spool) Emit(ctx context.Context, method, domain string, msg proto.Message) (uint64, error) {
	e, err := newEdgeEvent(method, domain, msg)
	if err != nil {
		return 0, err
	}
	return s.Append(ctx, e)
}

func newEdgeEvent(method, domain string, msg proto.Message) (*logbookv1.EdgeEvent, error) {
	data, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	id := events.NewID()
	return &logbookv1.EdgeEvent{Id: id[:], Method: method, Domain: domain, Time: timestamppb.Now(),
		Type: string(msg.ProtoReflect().Descriptor().FullName()), Data: data}, nil
}

// Head is the seq of the last spooled event (0: none yet).
func (s *Spool) Head() uint64 { return s.head.Load() }

// Acked is the seq up to which the control plane acknowledged every event.
func (s *Spool) Acked() uint64 { return s.acked.Load() }

// Backlog is the number of events waiting for acknowledgement.
func (s *Spool) Backlog() uint64 {
	h, a := s.head.Load(), s.acked.Load()
	if a >= h {
		return 0
	}
	return h - a
}

// Notify receives a value after appends (coalesced); the sender waits on it.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Ack durably records that every event up to seq was acknowledged. A seq
// at or below the current checkpoint is a no-op.
func (s *Spool) Ack(seq uint64) error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	if seq <= s.acked.Load() {
		return nil
	}
	if seq > s.head.Load() {
		return fmt.Errorf("spool: ack %d beyond head %d", seq, s.head.Load())
	}
	if err := writeJSONAtomic(s.ackPath, spoolCheckpoint{Acked: seq}, 0o600); err != nil {
		return fmt.Errorf("spool checkpoint: %w", err)
	}
	s.acked.Store(seq)
	return nil
}

// Read yields the spooled events from seq from on, with Seq set, up to the
// head when the read starts. Events are decoded one at a time.
func (s *Spool) Read(ctx context.Context, from uint64) iter.Seq2[*logbookv1.EdgeEvent, error] {
	return func(yield func(*logbookv1.EdgeEvent, error) bool) {
		for ev, err := range s.store.ReadAll(ctx, max(from, 1), events.Filter{}) {
			if err != nil {
				yield(nil, err)
				return
			}
			var e logbookv1.EdgeEvent
			if err := proto.Unmarshal(ev.Data, &e); err != nil {
				yield(nil, fmt.Errorf("spool: decode event at %d: %w", ev.Position, err))
				return
			}
			e.Seq = ev.Position
			if !yield(&e, nil) {
				return
			}
		}
	}
}

// Close closes the spool's store; it is idempotent.
func (s *Spool) Close() error { return s.store.Close() }

// backoff doubles from min to max with ±20% jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	j := time.Duration(float64(b.cur) * (0.8 + 0.4*rand.Float64()))
	return j
}

func (b *backoff) reset() { b.cur = 0 }
