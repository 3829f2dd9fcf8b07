package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// DefaultSpoolCompactBytes is the default size above which a drained spool
// starts a new generation (Config.SpoolCompactBytes).
const DefaultSpoolCompactBytes = 64 << 20

// Spool is the agent's outbox: every unit event is appended here first, as
// an EdgeEvent in the stream "outbox-<unit>" of an embedded store that holds
// nothing else, and gets a seq: dense, starting at 1, never reused.
//
// An event leaves the spool when the control plane acknowledges it: Ack
// advances the "acked" checkpoint, a small file replaced atomically. The
// embedded store is append-only, so the spool lives in generations, each
// its own store in <dir>/gen-<base> whose event at position p has seq
// base+p. When every event is acknowledged and the newest generation has
// grown past the compaction size, Compact starts an empty generation
// (based at the head) and deletes the older ones: disk use stays bounded.
// Only fully acknowledged generations are ever deleted, and only after the
// new one is in place, so a crash at any point loses no unacknowledged
// event: Open deletes a generation whose successor's base is at or below
// the checkpoint, and a half-made generation (still named "*.tmp").
//
// Append and the read methods are safe for concurrent use; Ack and
// Compact are meant for the one sender.
type Spool struct {
	dir       string
	stream    string
	unit      string
	ackPath   string
	logger    *slog.Logger
	compactAt int64

	// mu guards gens: Append and Read hold it shared, Compact exclusively
	// (with TryLock: it never waits, and never makes Append wait).
	mu   sync.RWMutex
	gens []*spoolGen // oldest first; the last takes appends

	head   atomic.Uint64
	acked  atomic.Uint64
	grown  atomic.Int64 // bytes appended since the newest generation was last measured
	ackMu  sync.Mutex
	notify chan struct{}
}

// spoolGen is one generation of the spool.
type spoolGen struct {
	base  uint64 // seq of position p is base+p
	dir   string
	store *embedded.Store
}

type spoolCheckpoint struct {
	Acked uint64 `json:"acked"`
}

// SpoolOption configures OpenSpool.
type SpoolOption func(*Spool) error

// WithSpoolCompactAt sets the size in bytes of the newest generation
// above which a drained spool starts a new one (default
// DefaultSpoolCompactBytes).
func WithSpoolCompactAt(n int64) SpoolOption {
	return func(s *Spool) error {
		if n <= 0 {
			return fmt.Errorf("spool compaction size %d: must be positive", n)
		}
		s.compactAt = n
		return nil
	}
}

const genPrefix = "gen-"

func genDirName(base uint64) string { return fmt.Sprintf("%s%020d", genPrefix, base) }

// OpenSpool opens (creating if needed) the spool in dir and its
// checkpoint file ackPath, and deletes generations left over from a
// compaction a crash interrupted.
func OpenSpool(ctx context.Context, dir, ackPath, unit string, logger *slog.Logger, opts ...SpoolOption) (*Spool, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Spool{dir: dir, stream: "outbox-" + unit, unit: unit, ackPath: ackPath, logger: logger,
		compactAt: DefaultSpoolCompactBytes, notify: make(chan struct{}, 1)}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, fmt.Errorf("open spool: %w", err)
		}
	}
	var cp spoolCheckpoint
	switch err := readJSON(ackPath, &cp); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("open spool checkpoint: %w", err)
	}
	bases, err := s.listGens()
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if len(bases) == 0 {
		if err := s.createGen(ctx, 0); err != nil {
			return nil, fmt.Errorf("open spool: %w", err)
		}
		bases = []uint64{0}
	}
	// A generation followed by one based at or below the checkpoint holds
	// only acknowledged events: a compaction made its successor, then
	// crashed before deleting it.
	for len(bases) > 1 && bases[1] <= cp.Acked {
		if err := os.RemoveAll(filepath.Join(dir, genDirName(bases[0]))); err != nil {
			return nil, fmt.Errorf("open spool: delete acknowledged generation: %w", err)
		}
		bases = bases[1:]
	}
	for _, base := range bases {
		g := &spoolGen{base: base, dir: filepath.Join(dir, genDirName(base))}
		if g.store, err = embedded.Open(ctx, g.dir, embedded.WithLogger(logger)); err != nil {
			s.closeStores()
			return nil, fmt.Errorf("open spool generation %d: %w", base, err)
		}
		s.gens = append(s.gens, g)
	}
	var head uint64
	for i, g := range s.gens {
		h, err := g.store.Head(ctx)
		if err != nil {
			s.closeStores()
			return nil, fmt.Errorf("open spool: %w", err)
		}
		if i > 0 && g.base != head {
			logger.Warn("spool generations are not contiguous", "generation", g.base, "previous_head", head)
		}
		head = g.base + h.Position
	}
	s.head.Store(head)
	if cp.Acked > head {
		logger.Warn("spool checkpoint is ahead of the spool (spool removed?); resending from the spool's head",
			"acked", cp.Acked, "head", head)
		cp.Acked = head
	}
	s.acked.Store(cp.Acked)
	if size, err := dirSize(s.gens[len(s.gens)-1].dir); err == nil {
		s.grown.Store(size)
	}
	return s, nil
}

// listGens removes half-made generations and returns the bases of the
// others, in order.
func (s *Spool) listGens() ([]uint64, error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var bases []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.RemoveAll(filepath.Join(s.dir, name)); err != nil {
				return nil, err
			}
			continue
		}
		digits, ok := strings.CutPrefix(name, genPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		base, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			continue
		}
		bases = append(bases, base)
	}
	slices.Sort(bases)
	return bases, nil
}

// createGen makes an empty generation based at base: the store is created
// under a temporary name and renamed into place, so a generation that
// exists is complete.
func (s *Spool) createGen(ctx context.Context, base uint64) error {
	final := filepath.Join(s.dir, genDirName(base))
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	st, err := embedded.Open(ctx, tmp, embedded.WithLogger(s.logger))
	if err != nil {
		return fmt.Errorf("create spool generation %d: %w", base, err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("create spool generation %d: %w", base, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("create spool generation %d: %w", base, err)
	}
	return syncDir(s.dir)
}

func (s *Spool) closeStores() error {
	var errs []error
	for _, g := range s.gens {
		errs = append(errs, g.store.Close())
	}
	return errors.Join(errs...)
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// Append spools evs atomically and durably, in order, and returns the seq of
// the last. It fills each event's unit, a new UUIDv7 id when it has none,
// and the time when it has none; seq is assigned by position and set when
// the event is read back.
func (s *Spool) Append(ctx context.Context, evs ...*logbookv1.EdgeEvent) (uint64, error) {
	batch := make([]events.Event, len(evs))
	var size int64
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
		size += int64(len(data))
	}
	// Hold the read lock until head covers the new events: Compact (under
	// the write lock) must not see everything acknowledged and drop the
	// generation that now holds them.
	s.mu.RLock()
	g := s.gens[len(s.gens)-1]
	res, err := g.store.Append(ctx, s.stream, events.Any, batch...)
	if err != nil {
		s.mu.RUnlock()
		if errors.Is(err, events.ErrClosed) {
			err = fmt.Errorf("%w: %v", ErrClosed, err)
		}
		return 0, fmt.Errorf("spool: %w", err)
	}
	s.grown.Add(size)
	last := g.base + res.LastPosition
	for {
		h := s.head.Load()
		if last <= h || s.head.CompareAndSwap(h, last) {
			break
		}
	}
	s.mu.RUnlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return last, nil
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
// head when the read starts. Events are decoded one at a time. Events
// before the oldest generation (acknowledged and compacted away) are
// skipped. A Compact waits for no reader: it is skipped while one reads.
func (s *Spool) Read(ctx context.Context, from uint64) iter.Seq2[*logbookv1.EdgeEvent, error] {
	return func(yield func(*logbookv1.EdgeEvent, error) bool) {
		s.mu.RLock()
		defer s.mu.RUnlock()
		gens := s.gens
		for i, g := range gens {
			if i+1 < len(gens) && gens[i+1].base < from {
				continue // every seq of g is below from
			}
			start := uint64(1)
			if from > g.base {
				start = from - g.base
			}
			for ev, err := range g.store.ReadAll(ctx, start, events.Filter{}) {
				if err != nil {
					yield(nil, err)
					return
				}
				var e logbookv1.EdgeEvent
				if err := proto.Unmarshal(ev.Data, &e); err != nil {
					yield(nil, fmt.Errorf("spool: decode event at %d: %w", g.base+ev.Position, err))
					return
				}
				e.Seq = g.base + ev.Position
				if !yield(&e, nil) {
					return
				}
			}
		}
	}
}

// Generations returns the base seq of each generation, oldest first.
func (s *Spool) Generations() []uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	bases := make([]uint64, len(s.gens))
	for i, g := range s.gens {
		bases[i] = g.base
	}
	return bases
}

// Compact starts a new, empty generation and deletes the older ones when
// every event is acknowledged and the newest generation is larger than
// the compaction size; otherwise, or while a Read or Append is under way,
// it does nothing. It reports whether it compacted. The sender calls it
// whenever it has drained the spool.
func (s *Spool) Compact(ctx context.Context) (bool, error) {
	if s.grown.Load() < s.compactAt || s.Backlog() > 0 {
		return false, nil
	}
	if !s.mu.TryLock() {
		return false, nil
	}
	defer s.mu.Unlock()
	head := s.head.Load()
	if s.acked.Load() != head { // an append came in meanwhile
		return false, nil
	}
	newest := s.gens[len(s.gens)-1]
	size, err := dirSize(newest.dir)
	if err != nil {
		return false, fmt.Errorf("spool: measure generation %d: %w", newest.base, err)
	}
	s.grown.Store(size)
	if size < s.compactAt || head == newest.base {
		return false, nil
	}
	if err := s.startGen(ctx, head); err != nil {
		return false, err
	}
	return true, s.dropAcknowledged()
}

// startGen adds a new generation based at head; s.mu is held.
func (s *Spool) startGen(ctx context.Context, head uint64) error {
	if err := s.createGen(ctx, head); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	g := &spoolGen{base: head, dir: filepath.Join(s.dir, genDirName(head))}
	var err error
	if g.store, err = embedded.Open(ctx, g.dir, embedded.WithLogger(s.logger)); err != nil {
		return fmt.Errorf("spool: open generation %d: %w", head, err)
	}
	s.gens = append(s.gens, g)
	s.grown.Store(0)
	return nil
}

// dropAcknowledged closes and deletes the generations whose events are
// all acknowledged (all but the newest, when the checkpoint has reached
// its base); s.mu is held.
func (s *Spool) dropAcknowledged() error {
	for len(s.gens) > 1 && s.gens[1].base <= s.acked.Load() {
		g := s.gens[0]
		s.gens = s.gens[1:]
		if err := g.store.Close(); err != nil {
			s.logger.Warn("spool: close compacted generation", "generation", g.base, "err", err)
		}
		if err := os.RemoveAll(g.dir); err != nil {
			return fmt.Errorf("spool: delete compacted generation %d: %w", g.base, err)
		}
		s.logger.Info("spool: compacted", "deleted_generation", g.base, "new_base", s.gens[0].base)
	}
	return nil
}

// Close closes the spool's stores; it is idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeStores()
}

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
