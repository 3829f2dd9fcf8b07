package actors

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
)

// Host runs entities: one protoactor actor per live stream, spawned on the
// first command, recovered from the stream's latest snapshot plus the tail
// of its stream, passivated after an idle timeout.
//
// Within one Host, an entity handles one command at a time and is never
// live twice: a command sent while the entity is passivating waits for it
// to stop and then activates a fresh one. Across hosts (or other writers
// of the same stream) the store's expected-version check is the fence: a
// command that loses the race is decided again on the new state.
//
// A Host is safe for concurrent use.
type Host struct {
	store  events.Store
	cfg    config
	system *actor.ActorSystem
	// supervisor restarts an entity whose Receive panicked, without limit.
	supervisor actor.SupervisorStrategy
	// pool runs the entities' mailboxes (see workerPool).
	pool *workerPool

	kindsMu sync.RWMutex
	kinds   map[string]*kindInfo

	shards [shardCount]shard
	seed   maphash.Seed
	live   atomic.Int64

	closed    atomic.Bool
	closeOnce sync.Once
	// actors counts spawned entity actors that have not stopped.
	actors sync.WaitGroup
	// ctx is the host's own context for store calls made by entities; it
	// ends when Close has stopped every entity.
	ctx    context.Context
	cancel context.CancelFunc
}

const shardCount = 64

// shard holds the live entities of some streams.
type shard struct {
	mu       sync.Mutex
	entities map[string]*entity
}

// entity is the host's record of one live entity actor.
type entity struct {
	stream string
	kind   *kindInfo
	id     string
	pid    *actor.PID
	// pending counts commands sent to the actor's mailbox that it has not
	// taken yet. It grows under the shard lock only, so a check under
	// that lock that sees zero proves nothing is queued.
	pending atomic.Int64
	// stopping is set, under the shard lock, once the actor was told to
	// stop; no command is sent to it after that.
	stopping bool
	// done is closed when the actor has stopped.
	done chan struct{}
}

type kindInfo struct {
	Kind
	registry *events.Registry
}

// Result is the outcome of a command.
type Result struct {
	// Stream is the entity's stream.
	Stream string
	// Version is the stream version the entity's State is at after the
	// command (0: the stream has no events).
	Version uint64
	// State is a copy of the entity's state after the command; the caller
	// owns it.
	State proto.Message
	// Events are the events the command appended, in order; empty when
	// the command decided nothing (or for Read).
	Events []proto.Message
	// Appended says where Events went in the log; zero when Events is
	// empty.
	Appended events.AppendResult
	// Attempts is how many times the command was decided (more than one
	// when other writers won the race for the stream).
	Attempts int
}

// NewHost returns a host that persists its entities' events in store. The
// host does not own store: close the host before the store.
func NewHost(store events.Store, opts ...Option) (*Host, error) {
	if store == nil {
		return nil, errors.New("actors: NewHost: nil store")
	}
	cfg := defaultConfig()
	var errs []error
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	logger := cfg.logger
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(minLevel{logger.Handler(), slog.LevelWarn}).With("lib", "protoactor")
		}),
		actor.WithDeadLetterRequestLogging(false),
	)
	h := &Host{
		store:      store,
		cfg:        cfg,
		system:     system,
		supervisor: actor.NewRestartingStrategy(),
		pool:       newWorkerPool(),
		kinds:      make(map[string]*kindInfo),
		seed:       maphash.MakeSeed(),
	}
	for i := range h.shards {
		h.shards[i].entities = make(map[string]*entity)
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// Register adds a kind: commands to streams "<kind.Category>-<id>" are
// handled by it from then on. It returns an error wrapping ErrInvalidKind
// for an incomplete kind, a category that is not a valid stream category,
// or a category already registered.
func (h *Host) Register(kind Kind) error {
	if h.closed.Load() {
		return ErrClosed
	}
	var problems []error
	if _, _, err := events.SplitStream(kind.Category + "-x"); err != nil {
		problems = append(problems, fmt.Errorf("category %q is not a valid stream category", kind.Category))
	}
	if kind.New == nil {
		problems = append(problems, errors.New("field New is nil"))
	}
	if kind.Decide == nil {
		problems = append(problems, errors.New("field Decide is nil"))
	}
	if kind.Evolve == nil {
		problems = append(problems, errors.New("field Evolve is nil"))
	}
	for i, ev := range kind.Events {
		if ev == nil {
			problems = append(problems, fmt.Errorf("field Events[%d] is nil", i))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("actors: register %q: %w: %w", kind.Category, ErrInvalidKind, err)
	}
	reg := new(events.Registry)
	reg.Register(kind.Events...)
	h.kindsMu.Lock()
	defer h.kindsMu.Unlock()
	if _, dup := h.kinds[kind.Category]; dup {
		return fmt.Errorf("actors: register %q: %w: category already registered", kind.Category, ErrInvalidKind)
	}
	h.kinds[kind.Category] = &kindInfo{Kind: kind, registry: reg}
	return nil
}

// Execute has the entity of stream handle cmd on behalf of md.Principal:
// it activates the entity if needed, decides with Env{Now: the host's
// clock, Principal: md.Principal}, appends the decided events (with md as
// their metadata) expecting the entity's current version, folds them into
// its state and returns the Result. A command that decides no event
// succeeds and appends nothing.
//
// Errors: a refusal from the kind's Decide as a *RefusedError wrapping
// it (test it with errors.Is); ErrConflict when other writers kept
// winning; an append error from the store, wrapped (the entity re-reads
// its stream before its next command, so it also sees events a failed
// append may have written); ErrEntityPanicked; ErrUnknownCategory;
// events.ErrInvalidStreamName; ErrClosed.
//
// ctx bounds only the wait. If ctx ends before the entity has started on
// the command (it was done already, or the command is still queued behind
// others), the command is dropped and never decided, and Execute returns
// an error wrapping both ErrNotExecuted and ctx.Err(). If ctx ends after
// the entity has started on it, the command runs to completion (its events
// may be appended; the store's I/O is not cancelled half-way) and Execute
// returns an error wrapping both ErrOutcomeUnknown and ctx.Err(); the
// stream tells what happened.
func (h *Host) Execute(ctx context.Context, stream string, cmd proto.Message, md events.Metadata) (Result, error) {
	if cmd == nil {
		return Result{}, fmt.Errorf("actors: execute on %s: nil command", stream)
	}
	return h.request(ctx, stream, &command{msg: cmd, md: md})
}

// ExecuteNoState is Execute for a caller that does not use the state
// after the command: the Result is the same except that State is nil.
//
// Copying the state is most of what a command allocates when the entity
// keeps much of it (a unit keeps its pending and last finished commands),
// and the edge link executes several commands per remote command only to
// record what happened; that garbage set how often the GC ran under load.
func (h *Host) ExecuteNoState(ctx context.Context, stream string, cmd proto.Message, md events.Metadata) (Result, error) {
	if cmd == nil {
		return Result{}, fmt.Errorf("actors: execute on %s: nil command", stream)
	}
	return h.request(ctx, stream, &command{msg: cmd, md: md, noState: true})
}

// Read returns the entity's current state (a copy) and version, activating
// and recovering it if needed. It appends nothing and is ordered with the
// entity's commands: it sees every command that Execute returned for
// before Read was called. It does not read the store when the entity is
// live: when other hosts append to the same stream, Read (like a command
// that decides nothing) may see a state that is behind until the entity's
// next append, which the store's expected-version check fences.
func (h *Host) Read(ctx context.Context, stream string) (Result, error) {
	return h.request(ctx, stream, &command{})
}

func (h *Host) request(ctx context.Context, stream string, c *command) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("actors: %s: %w: %w", stream, ErrNotExecuted, err)
	}
	category, id, err := events.SplitStream(stream)
	if err != nil {
		return Result{}, fmt.Errorf("actors: %w", err)
	}
	h.kindsMu.RLock()
	kind := h.kinds[category]
	h.kindsMu.RUnlock()
	if kind == nil {
		return Result{}, fmt.Errorf("actors: %s: %w %q", stream, ErrUnknownCategory, category)
	}
	if h.cfg.before != nil {
		if err := h.cfg.before(ctx); err != nil {
			return Result{}, fmt.Errorf("actors: %s: catching up with the log: %w", stream, err)
		}
	}
	c.reply = make(chan reply, 1)
	if err := h.route(ctx, stream, kind, id, c); err != nil {
		return Result{}, err
	}
	select {
	case r := <-c.reply:
		return r.res, r.err
	case <-ctx.Done():
	}
	if c.state.CompareAndSwap(queued, abandoned) {
		return Result{}, fmt.Errorf("actors: %s: %w: %w", stream, ErrNotExecuted, ctx.Err())
	}
	select {
	case r := <-c.reply:
		return r.res, r.err
	default:
		return Result{}, fmt.Errorf("actors: %s: %w: %w", stream, ErrOutcomeUnknown, ctx.Err())
	}
}

// route sends c to the live entity of stream, activating it if needed. It
// waits for an entity that is stopping to be gone, so that at most one
// actor per stream is live in this host.
func (h *Host) route(ctx context.Context, stream string, kind *kindInfo, id string, c *command) error {
	sh := h.shard(stream)
	for {
		sh.mu.Lock()
		if h.closed.Load() {
			sh.mu.Unlock()
			return fmt.Errorf("actors: %s: %w", stream, ErrClosed)
		}
		e := sh.entities[stream]
		if e != nil && e.stopping {
			done := e.done
			sh.mu.Unlock()
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return fmt.Errorf("actors: %s: %w: %w", stream, ErrNotExecuted, ctx.Err())
			}
		}
		if e == nil {
			e = h.spawn(stream, kind, id)
			sh.entities[stream] = e
		}
		// Sending under the lock orders the command before any stop
		// signal (passivation checks pending under this lock; Close and
		// Passivate send their poison pill under it).
		e.pending.Add(1)
		h.system.Root.Send(e.pid, c)
		sh.mu.Unlock()
		return nil
	}
}

// spawn starts the actor of a new entity; the caller holds its shard lock.
func (h *Host) spawn(stream string, kind *kindInfo, id string) *entity {
	e := &entity{stream: stream, kind: kind, id: id, done: make(chan struct{})}
	props := actor.PropsFromProducer(
		func() actor.Actor { return &entityActor{host: h, e: e} },
		actor.WithGuardian(h.supervisor),
		actor.WithDispatcher(h.pool),
	)
	h.actors.Add(1)
	h.live.Add(1)
	e.pid = h.system.Root.SpawnPrefix(props, stream+"#")
	return e
}

// passivateIdle is asked by an idle entity whether it may stop. It may when
// no command is queued for it; from then on none will be.
func (h *Host) passivateIdle(e *entity) bool {
	sh := h.shard(e.stream)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e.stopping || e.pending.Load() > 0 {
		return false
	}
	e.stopping = true
	return true
}

// stopped is called by an entity's actor when it has stopped.
func (h *Host) stopped(e *entity) {
	sh := h.shard(e.stream)
	sh.mu.Lock()
	if sh.entities[e.stream] == e {
		delete(sh.entities, e.stream)
	}
	sh.mu.Unlock()
	h.live.Add(-1)
	close(e.done)
	h.actors.Done()
}

// Passivate stops the live entity of stream, if any, after the commands
// already sent to it, and waits until it has stopped or ctx ends. Commands
// sent meanwhile wait and then activate it again. Entities passivate by
// themselves after the idle timeout; Passivate is for tests, benchmarks
// and memory pressure.
func (h *Host) Passivate(ctx context.Context, stream string) error {
	sh := h.shard(stream)
	sh.mu.Lock()
	e := sh.entities[stream]
	if e == nil {
		sh.mu.Unlock()
		return nil
	}
	if !e.stopping {
		e.stopping = true
		h.system.Root.Poison(e.pid)
	}
	sh.mu.Unlock()
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("actors: passivate %s: %w", stream, ctx.Err())
	}
}

// Live returns how many entities are in memory (active or stopping).
func (h *Host) Live() int { return int(h.live.Load()) }

// Close stops accepting commands (they get ErrClosed), lets every live
// entity finish the commands already sent to it, stops the entities and
// waits for them. It is idempotent and always returns nil.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		for i := range h.shards {
			sh := &h.shards[i]
			sh.mu.Lock()
			for _, e := range sh.entities {
				if !e.stopping {
					e.stopping = true
					h.system.Root.Poison(e.pid)
				}
			}
			sh.mu.Unlock()
		}
		h.actors.Wait()
		h.cancel()
		h.system.Shutdown()
		h.pool.close()
	})
	return nil
}

func (h *Host) shard(stream string) *shard {
	return &h.shards[maphash.String(h.seed, stream)%shardCount]
}

// minLevel drops records below min; it quiets protoactor's info logs.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(as), m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.min}
}
