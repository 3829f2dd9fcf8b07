package sinktest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
)

// holdGeneration returns a commit hook that, after the first commit of
// generation gen, waits until release is called (outside any
// transaction, so other generations keep committing).
func holdGeneration(t testing.TB, gen int) (hook projections.Option, release func()) {
	gate := make(chan struct{})
	var once, hold sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return projections.WithCommitHook(func(c projections.Commit) {
		if c.Generation == gen {
			hold.Do(func() { <-gate })
		}
	}), release
}

// testRuntimeRebuild rebuilds a live projection while appends continue:
// the old generation keeps serving and following the log until the new
// one, built from position 1, takes over; a restart keeps the rebuilt
// generation.
func testRuntimeRebuild(t *testing.T, cfg Config) {
	ctx := ctxT(t)
	st, sink := newStore(t, cfg), newSink(t, cfg)
	MustAppendCounters(t, ctx, st, 7, 2000, 1)
	const next = 1 + projections.GenerationStride
	hold, release := holdGeneration(t, next)
	r := mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 1, CounterOptions{})}, projections.WithMaxBatch(100), hold)
	t.Cleanup(release) // before r.Close
	if err := r.WaitReady(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	if err := r.Rebuild(ctx, "nope"); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Fatalf("Rebuild of an unknown projection = %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- r.Rebuild(ctx, "counts") }()
	waitFor(t, "the rebuild to start", func() bool { s, _ := r.Status("counts"); return s.Rebuild != nil })

	// The new generation is held after its first batch: the old one serves
	// and follows the appends.
	MustAppendCounters(t, ctx, st, 3, 300, 5000)
	head, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the serving generation to follow appends", func() bool {
		s, _ := r.Status("counts")
		return s.Checkpoint == head.Position
	})
	s, _ := r.Status("counts")
	if s.Generation != 1 || s.ServingGeneration != 1 || !s.Ready || s.Rebuild == nil || s.Rebuild.Generation != next {
		t.Fatalf("status during the rebuild: %+v (rebuild %+v)", s, s.Rebuild)
	}
	if _, version, err := ReadFold(ctx, sink, "counts"); err != nil || version != 1 {
		t.Fatalf("read during the rebuild: generation %d, %v", version, err)
	}
	mustFold(t, ctx, st, sink, "counts")

	// Appends continue through the switch.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := st.Append(ctx, fmt.Sprintf("counter-live%d", i%5), events.Any, CounterEvent(i)); err != nil {
				t.Errorf("append: %v", err)
				return
			}
		}
	})
	release()
	if err := <-done; err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	close(stop)
	wg.Wait()
	s, _ = r.Status("counts")
	if s.Generation != next || s.ServingGeneration != next || s.Version != 1 || s.Serving != 1 || !s.Ready || s.Rebuild != nil {
		t.Fatalf("status after the rebuild: %+v", s)
	}
	if cur, err := sink.Current(ctx, "counts"); err != nil || cur != next {
		t.Fatalf("current generation %d, %v; want %d", cur, err, next)
	}
	if ok, err := tableExists(ctx, sink, "counts", "counts_v1_streams"); err != nil || ok {
		t.Fatalf("generation 1's tables not dropped (%v)", err)
	}
	head, _ = st.Head(ctx)
	waitFor(t, "the new generation to follow appends", func() bool { s, _ := r.Status("counts"); return s.Checkpoint == head.Position })
	mustFold(t, ctx, st, sink, "counts")
	r.Close()
	if err := r.Rebuild(ctx, "counts"); !errors.Is(err, projections.ErrClosed) {
		t.Fatalf("Rebuild after Close = %v, want ErrClosed", err)
	}

	// A restart with the same version keeps the rebuilt generation; a
	// version bump builds a newer one.
	r = mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 1, CounterOptions{})})
	if s, _ := r.Status("counts"); s.Generation != next || s.ServingGeneration != next {
		t.Fatalf("status after a restart: %+v", s)
	}
	if err := r.WaitReady(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r = mustStart(t, ctx, st, sink, []projections.Projection{Counter("counts", 2, CounterOptions{})})
	if err := r.WaitReady(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Status("counts"); s.Generation != 2+projections.GenerationStride || s.Version != 2 || s.Serving != 2 {
		t.Fatalf("status after a version bump: %+v", s)
	}
	mustFold(t, ctx, st, sink, "counts")
}
