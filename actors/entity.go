package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
)

// command is the message an entity's mailbox carries: a command to decide,
// or a read (msg == nil).
type command struct {
	msg   proto.Message
	md    events.Metadata
	reply chan reply // buffered 1: the entity never blocks on it
	// noState: the caller does not want Result.State (ExecuteNoState).
	noState bool
	// state moves from queued to started (by the entity) or to
	// abandoned (by a caller whose ctx ended), exactly once.
	state atomic.Int32
}

const (
	queued int32 = iota
	started
	abandoned
)

type reply struct {
	res Result
	err error
}

// restartSignal is the panic value an entity uses to have protoactor's
// supervisor restart it after a Decide or Evolve panicked (the command
// that panicked was already answered).
type restartSignal struct {
	stream string
	value  any
}

// entityActor is the actor of one live entity. protoactor creates a fresh
// one on every (re)start; it recovers lazily, on its first message.
type entityActor struct {
	host *Host
	e    *entity

	loaded bool // state and version reflect the log up to version
	stale  bool // the log may have moved past version: catch up first
	state  proto.Message
	// version is the stream version state is folded up to.
	version uint64
	// snapVersion is the version of the latest snapshot saved or
	// recovered from.
	snapVersion uint64

	idle       *time.Timer // sends idleCheck; nil without an idle timeout
	lastActive time.Time
}

// idleCheck is sent by an entity's idle timer to the entity itself.
//
// The host keeps its own timer rather than protoactor's ReceiveTimeout:
// at the pinned version, receiveTimeoutHandler writes the context's
// timeout on the timer's goroutine while the mailbox goroutine reads it
// (a data race, asynkron/protoactor-go#1139).
type idleCheck struct{}

// Receive implements actor.Actor.
func (a *entityActor) Receive(ctx actor.Context) {
	h := a.host
	switch msg := ctx.Message().(type) {
	case *command:
		a.e.pending.Add(-1)
		a.lastActive = time.Now()
		if !msg.state.CompareAndSwap(queued, started) {
			return // the caller gave up before we started
		}
		a.handle(msg)
	case idleCheck:
		idle := time.Since(a.lastActive)
		switch {
		case idle < h.cfg.idleTimeout:
			a.idle.Reset(h.cfg.idleTimeout - idle)
		case h.passivateIdle(a.e):
			ctx.Stop(ctx.Self())
		default:
			// Commands are queued, or a stop is on its way.
			a.idle.Reset(h.cfg.idleTimeout)
		}
	case *actor.Started:
		a.lastActive = time.Now()
		if h.cfg.idleTimeout > 0 {
			self := ctx.Self()
			a.idle = time.AfterFunc(h.cfg.idleTimeout, func() { h.system.Root.Send(self, idleCheck{}) })
		}
	case *actor.Restarting:
		a.stopTimer()
	case *actor.Stopped:
		a.stopTimer()
		h.stopped(a.e)
	}
}

func (a *entityActor) stopTimer() {
	if a.idle != nil {
		a.idle.Stop()
	}
}

// handle runs one command (or read) and answers it.
func (a *entityActor) handle(c *command) {
	res, panicked, err := a.run(c)
	c.reply <- reply{res: res, err: err}
	if panicked != nil {
		a.loaded = false
		a.host.cfg.logger.Error("actors: entity panicked; restarting",
			slog.String("stream", a.e.stream), slog.Any("panic", panicked))
		panic(restartSignal{stream: a.e.stream, value: panicked})
	}
	if err == nil && len(res.Events) > 0 {
		a.maybeSnapshot()
	}
}

// run decides, appends and evolves. A panic of the kind's code is returned
// as panicked (with err wrapping ErrEntityPanicked).
func (a *entityActor) run(c *command) (res Result, panicked any, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = r
			res = Result{}
			err = fmt.Errorf("actors: %s: %w: %v", a.e.stream, ErrEntityPanicked, r)
		}
	}()
	res, err = a.execute(c)
	return res, nil, err
}

func (a *entityActor) execute(c *command) (Result, error) {
	h, e := a.host, a.e
	res := Result{Stream: e.stream}
	if h.cfg.catchUp && a.loaded {
		a.stale = true // other writers may have appended since
	}
	for attempt := 1; ; attempt++ {
		if err := a.refresh(); err != nil {
			return Result{}, err
		}
		if c.msg == nil {
			res.Version, res.State = a.version, a.stateCopy(c)
			return res, nil
		}
		res.Attempts = attempt
		env := Env{Now: h.cfg.now(), Principal: c.md.Principal}
		decided, err := e.kind.Decide(a.state, c.msg, env)
		if err != nil {
			return Result{}, &RefusedError{Stream: e.stream, Command: c.msg.ProtoReflect().Descriptor().FullName(), Err: err}
		}
		if len(decided) == 0 {
			res.Version, res.State = a.version, a.stateCopy(c)
			return res, nil
		}
		evs := make([]events.Event, len(decided))
		for i, m := range decided {
			if m == nil {
				return Result{}, fmt.Errorf("actors: %s: Decide returned a nil event", e.stream)
			}
			ev, err := events.NewEvent(m, c.md)
			if err != nil {
				return Result{}, fmt.Errorf("actors: %s: %w", e.stream, err)
			}
			ev.Time = env.Now
			evs[i] = ev
		}
		ar, err := h.store.Append(h.ctx, e.stream, events.Exactly(a.version), evs...)
		if err != nil {
			// The append may or may not have written: read the log again
			// before deciding anything else.
			a.stale = true
			if errors.Is(err, events.ErrWrongExpectedVersion) {
				if attempt <= h.cfg.conflictRetries {
					continue
				}
				return Result{}, fmt.Errorf("actors: %s: %w after %d attempts: %w", e.stream, ErrConflict, attempt, err)
			}
			return Result{}, fmt.Errorf("actors: %s: append: %w", e.stream, err)
		}
		if ar.FirstVersion != a.version+1 || ar.LastVersion != a.version+uint64(len(evs)) {
			// An idempotent re-append of ids seen elsewhere cannot happen
			// with fresh ids; treat anything else as a log we must re-read.
			a.stale = true
			return Result{}, fmt.Errorf("actors: %s: append went to versions %d..%d, expected from %d",
				e.stream, ar.FirstVersion, ar.LastVersion, a.version+1)
		}
		for _, m := range decided {
			a.state = e.kind.Evolve(a.state, m)
		}
		a.version = ar.LastVersion
		res.Version, res.State = a.version, a.stateCopy(c)
		res.Events, res.Appended = decided, ar
		return res, nil
	}
}

// stateCopy returns the copy of the state c's caller owns, nil when it
// asked for none.
func (a *entityActor) stateCopy(c *command) proto.Message {
	if c.noState {
		return nil
	}
	return proto.Clone(a.state)
}

// refresh makes state current: a full recovery when not loaded, a catch-up
// from version+1 when stale.
func (a *entityActor) refresh() error {
	switch {
	case !a.loaded:
		if err := a.recover(); err != nil {
			return err
		}
		a.loaded, a.stale = true, false
	case a.stale:
		if err := a.replay(a.version + 1); err != nil {
			// State is still valid up to version; try again next time.
			return err
		}
		a.stale = false
	}
	return nil
}

// recover rebuilds the state from the latest usable snapshot plus the tail
// of the stream. Snapshots are a cache: one that cannot be used is logged
// and ignored.
func (a *entityActor) recover() error {
	h, e := a.host, a.e
	a.state, a.version, a.snapVersion = e.kind.New(e.id), 0, 0
	if a.state == nil {
		return fmt.Errorf("actors: %s: New returned nil", e.stream)
	}
	stateType := string(a.state.ProtoReflect().Descriptor().FullName())
	snap, err := h.store.LoadSnapshot(h.ctx, e.stream)
	switch {
	case errors.Is(err, events.ErrSnapshotNotFound):
	case err != nil:
		h.cfg.logger.Warn("actors: loading snapshot failed; replaying the whole stream",
			slog.String("stream", e.stream), slog.Any("error", err))
	case snap.Type != stateType:
		h.cfg.logger.Info("actors: ignoring snapshot of another type",
			slog.String("stream", e.stream), slog.String("type", snap.Type), slog.String("want", stateType))
	default:
		s := a.state.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(snap.State, s); err != nil {
			h.cfg.logger.Warn("actors: ignoring undecodable snapshot",
				slog.String("stream", e.stream), slog.Uint64("version", snap.Version), slog.Any("error", err))
			break
		}
		a.state, a.version, a.snapVersion = s, snap.Version, snap.Version
	}
	err = a.replay(a.version + 1)
	if errors.Is(err, events.ErrStreamNotFound) && a.version > 0 {
		h.cfg.logger.Warn("actors: snapshot of a stream with no events; starting empty",
			slog.String("stream", e.stream), slog.Uint64("snapshot_version", a.version))
		a.state, a.version, a.snapVersion = e.kind.New(e.id), 0, 0
		err = nil
	}
	return err
}

// replay folds the stream's events from version from into state. A stream
// with no events is an empty entity when from is 1.
func (a *entityActor) replay(from uint64) error {
	h, e := a.host, a.e
	skipped := 0
	for ev, err := range h.store.ReadStream(h.ctx, e.stream, from) {
		if err != nil {
			if errors.Is(err, events.ErrStreamNotFound) && from == 1 {
				return nil
			}
			return fmt.Errorf("actors: %s: read stream from version %d: %w", e.stream, from, err)
		}
		if ev.Version != a.version+1 {
			return fmt.Errorf("actors: %s: read version %d after %d", e.stream, ev.Version, a.version)
		}
		m, err := e.kind.registry.Decode(ev)
		switch {
		case errors.Is(err, events.ErrUnknownType):
			// Not one of the kind's events: Evolve would ignore it.
			skipped++
		case err != nil:
			return fmt.Errorf("actors: %s: %w", e.stream, err)
		default:
			a.state = e.kind.Evolve(a.state, m)
		}
		a.version = ev.Version
	}
	if skipped > 0 {
		h.cfg.logger.Warn("actors: skipped events of types the kind does not register",
			slog.String("stream", e.stream), slog.Int("events", skipped))
	}
	return nil
}

// maybeSnapshot saves a snapshot once enough events were folded since the
// last one. Failure is logged: snapshots are only a cache.
func (a *entityActor) maybeSnapshot() {
	h, e := a.host, a.e
	if a.version-a.snapVersion < uint64(h.cfg.snapshotEvery) {
		return
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(a.state)
	if err == nil {
		err = h.store.SaveSnapshot(h.ctx, events.Snapshot{
			Stream:  e.stream,
			Version: a.version,
			Type:    string(a.state.ProtoReflect().Descriptor().FullName()),
			State:   data,
			Time:    h.cfg.now().UTC(),
		})
	}
	if err != nil {
		h.cfg.logger.Warn("actors: saving snapshot failed",
			slog.String("stream", e.stream), slog.Uint64("version", a.version), slog.Any("error", err))
		return
	}
	a.snapVersion = a.version
}
