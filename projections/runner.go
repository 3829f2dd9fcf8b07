package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
)

// Runner feeds projections from an events.Store into a Sink: each
// projection on its own goroutine, from its checkpoint, in batches, with
// its checkpoint committed in the same transaction as its rows.
//
// A Runner owns its goroutines (Close stops them and waits) but not the
// store or the sink: close those after the Runner.
type Runner struct {
	store  events.Store
	sink   Sink
	cfg    config
	byName map[string]*runner
	order  []*runner

	// ctx is the runner's own context, for the goroutines it owns; Close
	// cancels it.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	// mu orders Close with Rebuild starting goroutines: once closing is
	// set, none is added to wg.
	mu      sync.Mutex
	closing bool
	done    chan struct{}
}

// Start prepares every projection (migrations, checkpoint, current
// version) and starts feeding them. It fails when a projection is invalid,
// a name repeats, the sink already serves a newer version (ErrStaleVersion)
// or a migration fails; nothing keeps running then. ctx bounds the
// preparation only; the Runner runs until Close.
func Start(ctx context.Context, store events.Store, sink Sink, ps []Projection, opts ...Option) (*Runner, error) {
	cfg := defaultConfig()
	var errs []error
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	r := &Runner{store: store, sink: sink, cfg: cfg, byName: map[string]*runner{}, done: make(chan struct{})}
	for _, p := range ps {
		if err := p.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := r.byName[p.Name]; dup {
			errs = append(errs, fmt.Errorf("projection %q given twice", p.Name))
			continue
		}
		pr := newRunner(r, p, nil)
		r.byName[p.Name] = pr
		r.order = append(r.order, pr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	head, err := store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("projections: read head: %w", err)
	}
	for _, pr := range r.order {
		if err := pr.prepare(ctx, head.Position); err != nil {
			return nil, err
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	for _, pr := range r.order {
		r.wg.Go(func() { _ = pr.run(r.ctx) })
	}
	return r, nil
}

// Close stops every projection and waits for its goroutines; a batch in
// flight is rolled back. It is idempotent and returns nil.
func (r *Runner) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
		r.cancel()
		r.wg.Wait()
		for _, pr := range r.order {
			pr.mu.Lock()
			pr.st.State = StateClosed
			pr.mu.Unlock()
		}
		close(r.done)
	})
	return nil
}

// Done is closed once Close has stopped every projection.
func (r *Runner) Done() <-chan struct{} { return r.done }

// Status returns the named projection's status, or false.
func (r *Runner) Status(name string) (Status, bool) {
	pr, ok := r.byName[name]
	if !ok {
		return Status{}, false
	}
	return pr.status(), true
}

// Statuses returns the status of every projection, in Start's order.
func (r *Runner) Statuses() []Status {
	out := make([]Status, len(r.order))
	for i, pr := range r.order {
		out[i] = pr.status()
	}
	return out
}

// Ready returns nil when the named projection can serve reads (see
// Status.Ready), an error wrapping ErrNotReady when it cannot yet, and
// ErrUnknownProjection for a name the Runner does not run. The
// ErrNotReady message says where the projection is and, when it is
// retrying or stopped, why; APIs pass it on as it is.
func (r *Runner) Ready(name string) error {
	pr, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownProjection, name)
	}
	st := pr.status()
	if st.Ready {
		return nil
	}
	state := string(st.State)
	if st.State == StateStopped || st.State == StateRetrying {
		// %v: the cause is for people; in the chain its sentinels would
		// pass for the caller's own error.
		state = fmt.Sprintf("%s: %v", st.State, st.LastError)
	}
	return fmt.Errorf("%w: %s v%d at position %d of %d (%s)", ErrNotReady, st.Name, st.Version, st.Checkpoint, st.StartHead, state)
}

// WaitReady blocks until the named projection is ready (nil), ctx is done
// (ctx.Err()), the projection stops (an error wrapping ErrStopped and the
// cause) or the Runner closes (ErrClosed).
func (r *Runner) WaitReady(ctx context.Context, name string) error {
	pr, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownProjection, name)
	}
	select {
	case <-pr.ready:
		return nil
	default:
	}
	select {
	case <-pr.ready:
		return nil
	case <-pr.stopped:
		return fmt.Errorf("%w: %w", ErrStopped, pr.status().LastError)
	case <-r.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitPosition blocks until the named projection has applied the log up
// to position (its Status.Checkpoint is at least position; a filtered
// projection gets there over events it does not select at its next poll),
// and returns nil. Otherwise it returns as WaitReady does: ctx.Err(), an
// error wrapping ErrStopped and the cause, ErrClosed, or
// ErrUnknownProjection. Readiness is not required: a caller that needs it
// checks Ready.
func (r *Runner) WaitPosition(ctx context.Context, name string, position uint64) error {
	pr, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownProjection, name)
	}
	for {
		cp, advanced := pr.position()
		if cp >= position {
			return nil
		}
		var err error
		select {
		case <-advanced:
			continue
		case <-pr.stopped:
			err = fmt.Errorf("%w: %w", ErrStopped, pr.status().LastError)
		case <-r.done:
			err = ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		// The checkpoint no longer moves; its last commit may have
		// reached position while the select picked the end.
		if cp, _ := pr.position(); cp >= position {
			return nil
		}
		return err
	}
}

// runner runs one generation of a projection: the one readers are
// served (or will be, after a version bump at start), or, for a runtime
// rebuild, the new one being built (then live is the serving runner).
type runner struct {
	r *Runner
	p Projection
	// live is the serving runner when this one builds a generation for
	// Runner.Rebuild; nil otherwise.
	live *runner

	migrations []Migration
	startHead  uint64

	// Owned by the run goroutine.
	gen          int // the generation fed (see VersionOfGeneration)
	checkpoint   uint64
	serving      int // the generation readers are served
	caughtUp     bool
	isolateUntil uint64 // retry one event per batch up to this position
	attempt      int
	winStart     time.Time
	winEvents    uint64
	lastProgress time.Time

	mu      sync.Mutex
	st      Status
	ready   chan struct{}
	stopped chan struct{}
	exited  chan struct{}

	// advanced is closed and replaced, under mu, whenever st.Checkpoint
	// changes: WaitPosition's wake-up.
	advanced chan struct{}

	// swaps carries a builder's request to switch to its generation to
	// the live runner's goroutine (see handover).
	swaps chan swap
	// startMu serialises Rebuild's starts; rebuildMu guards builder, the
	// runtime rebuild in progress.
	startMu   sync.Mutex
	rebuildMu sync.Mutex
	builder   *build
}

func newRunner(r *Runner, p Projection, live *runner) *runner {
	pr := &runner{r: r, p: p, live: live, advanced: make(chan struct{}), ready: make(chan struct{}),
		stopped: make(chan struct{}), exited: make(chan struct{}), swaps: make(chan swap)}
	pr.st = Status{Name: p.Name, Version: p.Version, State: StateStarting}
	return pr
}

func (pr *runner) status() Status {
	pr.mu.Lock()
	st := pr.st
	pr.mu.Unlock()
	st.derive()
	pr.rebuildMu.Lock()
	b := pr.builder
	pr.rebuildMu.Unlock()
	if b != nil {
		bs := b.pr.status()
		st.Rebuild = &bs
	}
	return st
}

func (pr *runner) update(fn func(st *Status)) {
	pr.mu.Lock()
	cp := pr.st.Checkpoint
	fn(&pr.st)
	if pr.st.Checkpoint != cp {
		close(pr.advanced)
		pr.advanced = make(chan struct{})
	}
	pr.mu.Unlock()
}

// position returns the checkpoint and the channel closed when it next
// changes.
func (pr *runner) position() (uint64, <-chan struct{}) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.st.Checkpoint, pr.advanced
}

func (pr *runner) log() *slog.Logger {
	return pr.r.cfg.logger.With("projection", pr.p.Name, "version", pr.p.Version, "generation", pr.gen)
}

// prepare picks the generation to run at start: the current one when it
// holds the projection's version, a new one when the version was bumped.
func (pr *runner) prepare(ctx context.Context, head uint64) error {
	p := pr.p
	cur, err := pr.r.sink.Current(ctx, p.Name)
	switch {
	case errors.Is(err, ErrNoVersion):
		cur = 0
	case err != nil:
		return fmt.Errorf("projection %s: current version: %w", p.Name, err)
	case VersionOfGeneration(cur) > p.Version:
		return fmt.Errorf("%w: projection %s: sink serves v%d (generation %d), runner has v%d",
			ErrStaleVersion, p.Name, VersionOfGeneration(cur), cur, p.Version)
	}
	gen := cur
	if VersionOfGeneration(cur) != p.Version {
		gen = nextGeneration(p.Version, cur)
	}
	return pr.prepareGeneration(ctx, gen, cur, head)
}

// prepareGeneration migrates generation gen's tables and readies the
// runner to feed it while cur serves, until the head position.
func (pr *runner) prepareGeneration(ctx context.Context, gen, cur int, head uint64) error {
	sink, p := pr.r.sink, pr.p
	migs, err := LoadMigrations(p.Migrations, sink.Dialect(), p.Name, gen)
	if err != nil {
		return err
	}
	cp, err := sink.Prepare(ctx, p.Name, gen, migs)
	if err != nil {
		return fmt.Errorf("projection %s v%d (generation %d): prepare: %w", p.Name, p.Version, gen, err)
	}
	pr.gen, pr.migrations, pr.startHead, pr.checkpoint, pr.serving = gen, migs, head, cp, cur
	state := StateCatchingUp
	if cur != 0 && cur != gen {
		state = StateRebuilding
	}
	pr.update(func(st *Status) {
		st.Generation, st.ServingGeneration, st.Serving = gen, cur, VersionOfGeneration(cur)
		st.Checkpoint, st.Head, st.StartHead, st.State = cp, head, head, state
		st.Ready = state == StateRebuilding && pr.live == nil
	})
	if state == StateRebuilding {
		pr.log().Info("projection rebuilding", "serving", cur, "checkpoint", cp, "head", head)
	}
	return nil
}

// run feeds the generation until ctx ends, the projection stops on a
// poison event, or (for a builder) the live runner has switched to it.
// It returns the reason it stopped (nil once a build was handed over).
func (pr *runner) run(ctx context.Context) error {
	defer close(pr.exited)
	pr.winStart = time.Now()
	for ctx.Err() == nil {
		err := pr.session(ctx)
		if ctx.Err() != nil {
			break
		}
		var sw *swapSignal
		switch {
		case errors.Is(err, errHandedOver):
			return nil
		case errors.As(err, &sw):
			sw.s.reply <- pr.adopt(ctx, sw.s)
			continue
		}
		now := time.Now()
		var ee *EventError
		if errors.As(err, &ee) && isPoison(err) || errors.Is(err, ErrStopped) {
			if ee != nil {
				pr.log().Error("projection stopped: poison event", "position", ee.Position, "stream", ee.Stream, "type", ee.Type, "err", err)
			} else {
				pr.log().Error("projection stopped", "err", err)
			}
			pr.update(func(st *Status) {
				st.State, st.LastError, st.LastErrorAt = StateStopped, err, now
				st.Errors++
			})
			close(pr.stopped)
			return err
		}
		pr.attempt++
		delay := backoff(pr.r.cfg.backoffMin, pr.r.cfg.backoffMax, pr.attempt)
		pr.log().Warn("projection failed; retrying", "attempt", pr.attempt, "retry_in", delay, "checkpoint", pr.checkpoint, "err", err)
		pr.update(func(st *Status) {
			st.State, st.LastError, st.LastErrorAt, st.Attempt = StateRetrying, err, now, pr.attempt
			st.Errors++
		})
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case s := <-pr.swaps:
			t.Stop()
			s.reply <- pr.adopt(ctx, s)
		case <-ctx.Done():
			t.Stop()
		}
	}
	return ErrClosed
}

// backoff returns the delay before retry attempt (1-based): min * 2^(attempt-1),
// capped at max, with jitter between half and all of it.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + rand.N(half+1)
}

type item struct {
	ev  events.Event
	err error
}

// session subscribes from the checkpoint and applies batches until an
// error or ctx ends it.
func (pr *runner) session(ctx context.Context) error {
	r, p := pr.r, pr.p
	cp, err := r.sink.Checkpoint(ctx, p.Name, pr.gen)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	pr.checkpoint = cp
	if err := pr.checkCaughtUp(ctx); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	ch := make(chan item, r.cfg.buffer)
	wg.Go(func() {
		for ev, err := range r.store.Subscribe(sctx, cp+1, p.Filter) {
			select {
			case ch <- item{ev, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	ticker := time.NewTicker(r.cfg.poll)
	defer ticker.Stop()
	batch := make([]events.Event, 0, r.cfg.maxBatch)
	for {
		var pending error
		batch = batch[:0]
		limit := r.cfg.maxBatch
		if pr.isolateUntil > pr.checkpoint {
			limit = 1
		}
		take := func(it item) {
			switch {
			case it.err != nil:
				pending = it.err
			case it.ev.Position > pr.checkpoint && (len(batch) == 0 || it.ev.Position > batch[len(batch)-1].Position):
				batch = append(batch, it.ev)
			}
		}
		select {
		case it := <-ch:
			take(it)
		case <-ticker.C:
			if len(ch) == 0 {
				if err := pr.idle(ctx); err != nil {
					return err
				}
			}
			continue
		case s := <-pr.swaps:
			return &swapSignal{s}
		case <-ctx.Done():
			return ctx.Err()
		}
	drain:
		for pending == nil && len(batch) < limit {
			select {
			case it := <-ch:
				take(it)
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			if err := pr.apply(sctx, batch); err != nil {
				return err
			}
		}
		if pending != nil {
			return fmt.Errorf("subscription: %w", pending)
		}
	}
}

// apply commits one batch and the checkpoint after it.
func (pr *runner) apply(ctx context.Context, batch []events.Event) error {
	r, p := pr.r, pr.p
	from, to := pr.checkpoint, batch[len(batch)-1].Position
	var herr error
	err := r.sink.Apply(ctx, p.Name, pr.gen, from, to, func(tx Tx) error {
		herr = p.Handler.Handle(ctx, tx, batch)
		return herr
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if herr == nil {
			return fmt.Errorf("commit positions %d..%d: %w", batch[0].Position, to, err)
		}
		if len(batch) == 1 {
			ev := batch[0]
			return &EventError{Projection: p.Name, Version: p.Version, Generation: pr.gen, Position: ev.Position, Stream: ev.Stream, Type: ev.Type, Err: herr}
		}
		// Retry one event per batch to pin the failure to a position.
		pr.isolateUntil = to
		return fmt.Errorf("projection %s v%d: batch of positions %d..%d: %w", p.Name, p.Version, batch[0].Position, to, herr)
	}
	pr.committed(from, to, len(batch))
	return pr.checkCaughtUp(ctx)
}

func (pr *runner) committed(from, to uint64, n int) {
	now := time.Now()
	pr.checkpoint = to
	pr.attempt = 0
	state := StateLive
	if !pr.caughtUp {
		state = StateCatchingUp
		if pr.serving != 0 && pr.serving != pr.gen {
			state = StateRebuilding
		}
	}
	pr.update(func(st *Status) {
		st.Checkpoint = to
		st.Head = max(st.Head, to)
		st.Events += uint64(n)
		st.Attempt = 0
		st.State = state
		pr.rate(st, now)
	})
	if h := pr.r.cfg.onCommit; h != nil {
		h(Commit{Projection: pr.p.Name, Version: pr.p.Version, Generation: pr.gen, From: from, To: to, Events: n, At: now})
	}
	pr.maybeLogProgress(now)
}

// rate updates st.EventsPerSecond about once a second; called under mu.
func (pr *runner) rate(st *Status, now time.Time) {
	if dt := now.Sub(pr.winStart); dt >= time.Second {
		st.EventsPerSecond = float64(st.Events-pr.winEvents) / dt.Seconds()
		pr.winStart, pr.winEvents = now, st.Events
	}
}

func (pr *runner) maybeLogProgress(now time.Time) {
	if pr.caughtUp || now.Sub(pr.lastProgress) < pr.r.cfg.progressEvery {
		return
	}
	pr.lastProgress = now
	st := pr.status()
	pr.log().Info("projection progress", "state", st.State, "position", st.Checkpoint, "head", st.Head,
		"percent", fmt.Sprintf("%.1f", 100*st.Progress), "events_per_s", int64(st.EventsPerSecond))
}

// checkCaughtUp marks the projection caught up once its checkpoint reaches
// the head seen at start, switching a rebuilt version in first.
func (pr *runner) checkCaughtUp(ctx context.Context) error {
	if pr.caughtUp || pr.checkpoint < pr.startHead {
		return nil
	}
	p := pr.p
	if pr.serving != pr.gen {
		if pr.live != nil {
			// A runtime rebuild: the live runner switches, between two
			// of its batches, and feeds this generation from then on.
			if err := pr.handover(ctx); err != nil {
				return err
			}
			return errHandedOver
		}
		old := pr.serving
		if err := pr.r.sink.Switch(ctx, p.Name, pr.gen); err != nil {
			return fmt.Errorf("switch to generation %d: %w", pr.gen, err)
		}
		pr.serving = pr.gen
		if old != 0 {
			pr.log().Info("projection switched", "from", old, "checkpoint", pr.checkpoint)
		}
	}
	pr.caughtUp = true
	pr.update(func(st *Status) {
		st.Serving, st.ServingGeneration, st.Ready, st.State = p.Version, pr.gen, true, StateLive
	})
	close(pr.ready)
	pr.log().Info("projection ready", "checkpoint", pr.checkpoint, "start_head", pr.startHead)
	return nil
}

// idle refreshes the head and, for filtered projections, moves the
// checkpoint over a tail of events the filter does not select.
func (pr *runner) idle(ctx context.Context) error {
	r, p := pr.r, pr.p
	now := time.Now()
	h, err := r.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	pr.update(func(st *Status) {
		st.Head = max(st.Head, h.Position)
		pr.rate(st, now)
	})
	if pr.checkpoint < h.Position && !p.Filter.IsZero() {
		selected := false
		for ev, err := range r.store.ReadAll(ctx, pr.checkpoint+1, p.Filter) {
			if err != nil {
				return fmt.Errorf("scan for selected events: %w", err)
			}
			selected = ev.Position <= h.Position
			break
		}
		if !selected {
			from := pr.checkpoint
			if err := r.sink.Apply(ctx, p.Name, pr.gen, from, h.Position, nil); err != nil {
				return fmt.Errorf("move checkpoint to %d: %w", h.Position, err)
			}
			pr.committed(from, h.Position, 0)
		}
	}
	pr.maybeLogProgress(now)
	return pr.checkCaughtUp(ctx)
}

// isPoison reports whether retrying err cannot help.
func isPoison(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.Is(err, ErrPoison) || errors.Is(err, proto.Error) || errors.Is(err, events.ErrUnknownType) ||
		errors.As(err, &syn) || errors.As(err, &typ)
}
