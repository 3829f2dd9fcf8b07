package projections

import (
	"context"
	"errors"
	"fmt"
)

// Generations. The tables, checkpoint and migration records of a
// projection version live in a generation, the number the sink knows as
// the version ("fleet_v1002_units" is generation 1002). The first build of
// version v is generation v; a Runner.Rebuild of it builds the next free
// generation v + k*GenerationStride. So the version is always
// VersionOfGeneration(generation), and generations only grow: the sink's
// ordering (Switch refuses an older generation) holds across rebuilds and
// version bumps, and Start recognises a rebuilt generation of its own
// version after a restart.
const (
	// MaxVersion is the largest Projection.Version.
	MaxVersion = 999
	// GenerationStride separates the generations of one version.
	GenerationStride = MaxVersion + 1
)

// VersionOfGeneration returns the projection version a generation holds.
func VersionOfGeneration(gen int) int { return gen % GenerationStride }

// nextGeneration returns the smallest generation of version after after.
func nextGeneration(version, after int) int {
	gen := version
	if after >= gen {
		gen += ((after-gen)/GenerationStride + 1) * GenerationStride
	}
	return gen
}

// errHandedOver ends a builder's session once the live runner serves its
// generation.
var errHandedOver = errors.New("projections: generation handed over")

// swap asks the live runner to switch to a builder's generation.
type swap struct {
	gen        int
	checkpoint uint64
	reply      chan error // buffered: the live runner never blocks on it
}

// swapSignal ends the live runner's session so that its goroutine can
// switch between two batches.
type swapSignal struct{ s swap }

func (s *swapSignal) Error() string {
	return fmt.Sprintf("projections: switch to generation %d requested", s.s.gen)
}

// build is a runtime rebuild in progress.
type build struct {
	pr   *runner
	done chan struct{}
	err  error // set before done is closed
}

// Rebuild rebuilds the named projection at runtime, without downtime: it
// builds a new generation of the running version from position 1 into new
// tables, while the current generation keeps serving reads and following
// the log; once the new one has reached the head of the log seen when the
// rebuild started, the projection's goroutine switches to it between two
// batches (Sink.Switch: readers move atomically, the old tables are
// dropped) and follows the log from there.
//
// The rebuild belongs to the Runner: ctx bounds only the wait. Rebuild
// returns nil once the switch is done; an error wrapping ctx.Err() when ctx
// ends first (the rebuild goes on; call Rebuild again to wait for it, it
// does not start a second one); ErrUnknownProjection; ErrNotReady when the
// projection has not caught up once since start; ErrRebuilding while it
// builds a new version after a version bump at start; ErrStopped when the
// projection or the new generation stopped on a poison event; ErrClosed.
// Status(name).Rebuild reports the new generation's progress meanwhile.
//
// The Handler is called concurrently for the two generations during a
// rebuild (each call with its own Tx), so it must not keep state between
// calls.
func (r *Runner) Rebuild(ctx context.Context, name string) error {
	pr, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownProjection, name)
	}
	b, err := pr.startBuild(ctx)
	if err != nil {
		return err
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("projection %s: rebuild continues in the background: %w", name, ctx.Err())
	}
}

// startBuild returns the rebuild in progress, or starts one.
func (pr *runner) startBuild(ctx context.Context) (*build, error) {
	pr.startMu.Lock()
	defer pr.startMu.Unlock()
	pr.rebuildMu.Lock()
	b := pr.builder
	pr.rebuildMu.Unlock()
	if b != nil {
		return b, nil
	}
	r, p := pr.r, pr.p
	pr.mu.Lock()
	st := pr.st
	pr.mu.Unlock()
	switch {
	case st.State == StateClosed || r.ctx.Err() != nil:
		return nil, fmt.Errorf("projection %s: %w", p.Name, ErrClosed)
	case st.State == StateStopped:
		return nil, fmt.Errorf("projection %s: %w: %w", p.Name, ErrStopped, st.LastError)
	case st.ServingGeneration != 0 && st.ServingGeneration != st.Generation:
		return nil, fmt.Errorf("%w: projection %s is building v%d from position 1 while v%d serves (position %d of %d); rebuild once it is live",
			ErrRebuilding, p.Name, p.Version, VersionOfGeneration(st.ServingGeneration), st.Checkpoint, st.StartHead)
	case !st.Ready:
		return nil, fmt.Errorf("%w: projection %s v%d is catching up (position %d of %d); rebuild once it is live",
			ErrNotReady, p.Name, p.Version, st.Checkpoint, st.StartHead)
	}
	head, err := r.store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection %s: rebuild: read head: %w", p.Name, err)
	}
	// Skip generations an interrupted rebuild left behind: this one
	// starts from position 1. Their tables go at the next switch.
	gen := nextGeneration(p.Version, st.Generation)
	for {
		cp, err := r.sink.Checkpoint(ctx, p.Name, gen)
		if err != nil {
			return nil, fmt.Errorf("projection %s: rebuild: %w", p.Name, err)
		}
		if cp == 0 {
			break
		}
		gen += GenerationStride
	}
	bpr := newRunner(r, p, pr)
	if err := bpr.prepareGeneration(ctx, gen, st.Generation, head.Position); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	b = &build{pr: bpr, done: make(chan struct{})}
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return nil, fmt.Errorf("projection %s: %w", p.Name, ErrClosed)
	}
	r.wg.Add(1)
	r.mu.Unlock()
	pr.rebuildMu.Lock()
	pr.builder = b
	pr.rebuildMu.Unlock()
	bpr.log().Info("projection rebuild started", "serving", st.Generation, "head", head.Position)
	go func() {
		defer r.wg.Done()
		err := bpr.run(r.ctx)
		if err != nil {
			err = fmt.Errorf("projection %s: rebuild into generation %d: %w", p.Name, gen, err)
		}
		b.err = err
		pr.rebuildMu.Lock()
		pr.builder = nil
		pr.rebuildMu.Unlock()
		close(b.done)
	}()
	return b, nil
}

// handover asks the live runner's goroutine to switch to the builder's
// generation, at the builder's checkpoint, and waits for the outcome.
func (pr *runner) handover(ctx context.Context) error {
	s := swap{gen: pr.gen, checkpoint: pr.checkpoint, reply: make(chan error, 1)}
	select {
	case pr.live.swaps <- s:
	case <-pr.live.exited:
		return fmt.Errorf("%w: the serving generation is no longer followed", ErrStopped)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-s.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// adopt switches the sink to generation gen, which a builder has brought
// to checkpoint, and makes the live runner follow it from there. It runs
// on the live runner's goroutine, between two sessions.
func (pr *runner) adopt(ctx context.Context, s swap) error {
	if err := pr.r.sink.Switch(ctx, pr.p.Name, s.gen); err != nil {
		return fmt.Errorf("switch to generation %d: %w", s.gen, err)
	}
	old := pr.gen
	pr.gen, pr.serving, pr.checkpoint, pr.isolateUntil, pr.attempt = s.gen, s.gen, s.checkpoint, 0, 0
	pr.update(func(st *Status) {
		st.Generation, st.ServingGeneration, st.Checkpoint = s.gen, s.gen, s.checkpoint
		st.State, st.Attempt = StateLive, 0
	})
	pr.log().Info("projection rebuilt and switched", "from_generation", old, "checkpoint", s.checkpoint)
	return nil
}
