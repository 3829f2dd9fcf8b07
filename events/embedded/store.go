package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
)

var _ events.Store = (*Store)(nil)

// Store is the embedded event log: segment files of CRC-framed appends with
// group commit, and an index in Pebble, all in one directory:
//
//	<dir>/LOCK          held while the store is open
//	<dir>/log/*.seg     the log itself, named by the first position they hold
//	<dir>/index/        Pebble: stream, position and id index, snapshots
//
// Appends form write groups: each caller decides and encodes its own frame
// into the filling group under a mutex, and the group's first member, its
// leader, writes and fdatasyncs the whole group while the next one fills;
// one indexer goroutine indexes durable groups. Readers read segments
// directly and never see an event before it is durable.
type Store struct {
	cfg  config
	fs   vfs.FS
	dir  string
	lock io.Closer
	idx  *pebble.DB

	// gmu guards the filling write group and the writer's decision
	// state; see commit. It is taken before mu, never after.
	gmu            sync.Mutex
	filling        *batch         // the group appends join; never nil once open
	closingAppends bool           // set by Close: appends are refused
	leaders        sync.WaitGroup // group leaders that have not finished
	lingerTimer    *time.Timer    // the leader's that is lingering
	synced         chan *batch    // leaders -> indexLoop, in group order
	syncing        chan struct{}  // leaders -> indexLoop: a sync started
	// outstanding counts appends (Append calls, AppendBatch entries) that
	// have not returned; see linger.
	outstanding atomic.Int64
	lastSync    atomic.Int64  // duration of the last fdatasync, in ns
	stopped     chan struct{} // closed when indexLoop is done
	closing     sync.Once
	closed      atomic.Bool

	w writer // see writer

	stats struct {
		syncs, writes, appends, events atomic.Uint64
	}

	// indexed describes the groups whose index entries are committed to
	// Pebble; see appendReq.lookupSeq.
	indexed atomic.Pointer[indexedState]

	// res guards the index and the segment read handles against Close:
	// callers hold it shared around each index call or segment read (never
	// across a yield, so a stalled reader cannot hold up Close), Close
	// holds it exclusively to close them. It is never taken recursively.
	res       sync.RWMutex
	resClosed bool

	mu      sync.Mutex
	durable durableState
	// pending are the durable groups whose index entries are not yet
	// committed, in order; readers look there for what the index lacks.
	pending []*batch
	notify  chan struct{} // closed and replaced whenever durable advances
	segs    []*segment    // every segment, in order; only ever appended to
	failed  error         // set once a write or sync failed; appends refuse
	// hasFailed mirrors failed != nil, so the append path checks it
	// without taking mu (which readers contend for).
	hasFailed atomic.Bool
}

// indexedState is what Append's caller-side id lookups may rely on: every
// group up to seq is in the index, and no id in those groups is greater
// than maxID (ids compare as 16-byte strings).
type indexedState struct {
	seq   uint64
	maxID uuid.UUID
}

// durableState is the end of the durable, indexed log.
type durableState struct {
	head events.Head
	end  loc
}

// segment is one file of the log.
type segment struct {
	first uint64 // first position it holds; its name
	path  string
	r     vfs.File // shared read handle (ReadAt is safe for concurrent use)
	// size is the end of the last frame once the segment is sealed (the
	// writer moved on), or -1 while it is the active segment.
	size atomic.Int64
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

// Open opens the store in dir, creating it if needed. It recovers from a
// crash before returning: a torn or corrupt tail after the last checkpoint is
// truncated (and logged), never served, and the index is brought up to date
// with the log. Only one Store may have dir open at a time.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	cfg := defaultConfig()
	var errs []error
	for _, o := range opts {
		errs = append(errs, o(&cfg))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("embedded: open: empty directory")
	}
	s := &Store{
		cfg:     cfg,
		fs:      cfg.fs,
		dir:     dir,
		synced:  make(chan *batch, 64),
		syncing: make(chan struct{}, 1),
		stopped: make(chan struct{}),
		notify:  make(chan struct{}),
	}
	if err := s.open(ctx); err != nil {
		s.release()
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	s.filling = s.newGroup(nil)
	s.lingerTimer = time.NewTimer(time.Hour)
	s.lingerTimer.Stop()
	go s.indexLoop()
	return s, nil
}

func (s *Store) logDir() string { return filepath.Join(s.dir, "log") }

func (s *Store) open(ctx context.Context) error {
	if err := s.fs.MkdirAll(s.logDir(), 0o755); err != nil {
		return err
	}
	lock, err := s.fs.Lock(filepath.Join(s.dir, "LOCK"))
	if err != nil {
		return fmt.Errorf("lock (is another process using this directory?): %w", err)
	}
	s.lock = lock
	popts := &pebble.Options{
		FS: s.fs,
		// The log is the write-ahead log: the index is rebuilt from it
		// after a crash, so Pebble's own WAL would only cost a second write.
		DisableWAL:   true,
		MemTableSize: 64 << 20,
		Logger:       pebbleLogger{s.cfg.logger},
	}
	// Every Append looks its event ids up, and nearly all are new: Bloom
	// filters answer those misses without reading data blocks.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	s.idx, err = pebble.Open(filepath.Join(s.dir, "index"), popts)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return s.recover(ctx)
}

// release closes whatever open managed to open.
func (s *Store) release() {
	for _, seg := range s.segs {
		if seg.r != nil {
			seg.r.Close()
		}
	}
	if s.w.f != nil {
		s.w.f.Close()
	}
	if s.idx != nil {
		s.idx.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
}

// Close stops taking appends, waits for those in flight to be durable and
// acknowledged, flushes the index and closes every file. Subscriptions end
// with ErrClosed. Close is idempotent; every call returns the first result.
func (s *Store) Close() error {
	var err error
	s.closing.Do(func() {
		s.closed.Store(true)
		s.gmu.Lock()
		s.closingAppends = true
		s.gmu.Unlock()
		s.leaders.Wait() // every group that has members has a leader
		close(s.synced)
		<-s.stopped
		s.mu.Lock()
		close(s.notify) // wake subscribers; they see closed and stop
		s.notify = nil
		s.mu.Unlock()
		var errs []error
		if s.w.f != nil {
			errs = append(errs, s.w.f.Sync(), s.w.f.Close())
			s.w.f = nil
		}
		s.res.Lock()
		s.resClosed = true
		errs = append(errs, s.idx.Flush())
		for _, seg := range s.segs {
			errs = append(errs, seg.r.Close())
		}
		errs = append(errs, s.idx.Close(), s.lock.Close())
		s.res.Unlock()
		err = errors.Join(errs...)
	})
	return err
}

// Head returns the position and hash of the last durable event.
func (s *Store) Head(ctx context.Context) (events.Head, error) {
	if s.closed.Load() {
		return events.Head{}, events.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return events.Head{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable.head, nil
}

// state returns the durable end, the segments and the channel that will be
// closed when the durable end next moves (nil once the store is closed).
func (s *Store) state() (durableState, []*segment, chan struct{}) {
	v := s.view()
	return v.durableState, v.segs, v.notify
}

// view is a consistent look at the log for a reader: the durable end, the
// segments, the batches up to it not yet in the index, and the channel that
// will be closed when the durable end next moves.
type view struct {
	durableState
	segs    []*segment
	pending []*batch
	notify  chan struct{}
}

// view returns the current view. Read pending before the index: a batch
// leaves pending only after its entries are committed, so every durable
// frame is in one or the other.
func (s *Store) view() view {
	s.mu.Lock()
	defer s.mu.Unlock()
	return view{durableState: s.durable, segs: s.segs, pending: s.pending, notify: s.notify}
}

// pendingRuns returns the runs of stream in v's pending batches holding
// versions >= from, in version order.
func (v view) pendingRuns(stream string, from uint64) []run {
	var runs []run
	for _, b := range v.pending {
		for _, f := range b.frames {
			if f.stream == stream && f.lastVersion >= from {
				runs = append(runs, f.run)
			}
		}
	}
	return runs
}

// pendingVersion returns stream's last version in v's pending batches, or 0.
func (v view) pendingVersion(stream string) uint64 {
	var version uint64
	for _, b := range v.pending {
		for _, f := range b.frames {
			if f.stream == stream {
				version = f.lastVersion
			}
		}
	}
	return version
}

// pendingFrameAt returns the location of the last pending frame starting
// at or before pos.
func (v view) pendingFrameAt(pos uint64) (run, bool) {
	var best run
	found := false
	for _, b := range v.pending {
		for _, f := range b.frames {
			if f.firstPos > pos {
				return best, found
			}
			best, found = f.run, true
		}
	}
	return best, found
}

// readAt reads len(buf) bytes at off of seg, or fails with ErrClosed once
// the store is closed.
func (s *Store) readAt(seg *segment, buf []byte, off int64) error {
	if !s.acquire() {
		return events.ErrClosed
	}
	defer s.res.RUnlock()
	if _, err := seg.r.ReadAt(buf, off); err != nil {
		return fmt.Errorf("embedded: read %s at %d: %w", seg.path, off, err)
	}
	return nil
}

// Stats counts the store's work since Open, for metrics and tuning.
type Stats struct {
	// Appends and Events are the Append calls and events made durable.
	Appends, Events uint64
	// Writes counts write calls to segments; Syncs counts fdatasyncs.
	// Events/Syncs is the group commit's average group size.
	Writes, Syncs uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Appends: s.stats.appends.Load(), Events: s.stats.events.Load(),
		Writes: s.stats.writes.Load(), Syncs: s.stats.syncs.Load(),
	}
}

// acquire takes res shared, reporting false (and holding nothing) once the
// store is closed. Pair with s.res.RUnlock.
func (s *Store) acquire() bool {
	s.res.RLock()
	if s.resClosed {
		s.res.RUnlock()
		return false
	}
	return true
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(string, ...any) {}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("index: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("index: fatal: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf("embedded: index: "+format, args...))
}
