package raft

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/storetest"
)

// acked is an acknowledged append: where the cluster said its event went.
type acked struct {
	id     uuid.UUID
	stream string
	res    events.AppendResult
}

// loadGen runs writers, each appending one event per call with an exact
// expected version to its own stream, through whichever live node comes
// next. A call that fails (its node closed under it, no leader for a
// while) is retried with the same event, on another node: appends are
// idempotent on ids, so an append never lands twice and none is lost.
type loadGen struct {
	c      *testCluster
	mu     sync.Mutex
	acks   []acked
	count  atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
	failed chan error
}

func startLoad(c *testCluster, writers int) *loadGen {
	g := &loadGen{c: c, stop: make(chan struct{}), failed: make(chan error, writers)}
	for w := range writers {
		g.wg.Add(1)
		go g.write(w)
	}
	return g
}

func (g *loadGen) write(w int) {
	defer g.wg.Done()
	stream := fmt.Sprintf("load-w%d", w)
	var version uint64
	for k := 0; ; k++ {
		select {
		case <-g.stop:
			return
		default:
		}
		ev := storetest.NewEvent()
		for attempt := 0; ; attempt++ {
			nodes := g.c.live()
			if len(nodes) == 0 {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			n := nodes[(k+attempt+w)%len(nodes)]
			// A client gives up on a node after a while and tries another.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			res, err := n.Store().Append(ctx, stream, events.Exactly(version), ev)
			cancel()
			if err == nil {
				if res.FirstVersion != version+1 {
					g.failed <- fmt.Errorf("%s: append at version %d acknowledged at %d", stream, version, res.FirstVersion)
					return
				}
				version = res.LastVersion
				g.mu.Lock()
				g.acks = append(g.acks, acked{ev.ID, stream, res})
				g.mu.Unlock()
				g.count.Add(1)
				break
			}
			if deterministic(err) {
				g.failed <- fmt.Errorf("%s: append at version %d through %s: %w", stream, version, n.ID(), err)
				return
			}
			if attempt > 100 {
				g.failed <- fmt.Errorf("%s: append at version %d keeps failing: %w", stream, version, err)
				return
			}
		}
	}
}

// progress waits until at least n more appends are acknowledged.
func (g *loadGen) progress(t *testing.T, n int64, what string) {
	t.Helper()
	target := g.count.Load() + n
	waitFor(t, 30*time.Second, fmt.Sprintf("%d more acknowledged appends %s", n, what), func() bool {
		select {
		case err := <-g.failed:
			t.Fatal(err)
		default:
		}
		return g.count.Load() >= target
	})
}

func (g *loadGen) finish(t *testing.T) []acked {
	t.Helper()
	close(g.stop)
	g.wg.Wait()
	select {
	case err := <-g.failed:
		t.Fatal(err)
	default:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.acks
}

// checkLog checks that every live node holds the same log, hash-chained,
// with every acknowledged append exactly once, where it was acknowledged.
func checkLog(t *testing.T, c *testCluster, acks []acked) {
	t.Helper()
	head := c.converged()
	var want []events.Event
	for i, n := range c.live() {
		got := storetest.MustReadAll(t, n.Store(), 0, events.Filter{})
		storetest.CheckChain(t, got)
		if uint64(len(got)) != head.Position {
			t.Fatalf("%s holds %d events, head says %d", n.ID(), len(got), head.Position)
		}
		if i == 0 {
			want = got
			continue
		}
		for j := range want {
			if d := storetest.EventDiff(want[j], got[j]); d != "" {
				t.Fatalf("%s differs from %s at position %d: %s", n.ID(), c.live()[0].ID(), j+1, d)
			}
		}
	}
	seen := make(map[uuid.UUID]events.Event, len(want))
	for _, ev := range want {
		if _, dup := seen[ev.ID]; dup {
			t.Fatalf("event %s is in the log twice", ev.ID)
		}
		seen[ev.ID] = ev
	}
	for _, a := range acks {
		ev, ok := seen[a.id]
		switch {
		case !ok:
			t.Fatalf("acknowledged append %s to %s at %+v is missing", a.id, a.stream, a.res)
		case ev.Stream != a.stream || ev.Version != a.res.FirstVersion || ev.Position != a.res.FirstPosition || ev.Hash != a.res.Hash:
			t.Fatalf("acknowledged append %s: acknowledged %s v%d at %d, log has %s v%d at %d",
				a.id, a.stream, a.res.FirstVersion, a.res.FirstPosition, ev.Stream, ev.Version, ev.Position)
		}
	}
}

// checkStaleLeaderFenced appends on stream with an expectation that was
// true before the current leader appended: the cluster must refuse it.
func checkStaleLeaderFenced(t *testing.T, c *testCluster) {
	t.Helper()
	stream := "fence-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
	l := c.leader()
	storetest.MustAppend(t, l.Store(), stream, events.NoStream, storetest.NewEvent())
	for _, n := range c.live() {
		_, err := n.Store().Append(storetest.Context(t), stream, events.NoStream, storetest.NewEvent())
		var wev *events.WrongExpectedVersionError
		if !errors.As(err, &wev) || wev.Actual != 1 {
			t.Fatalf("stale append through %s: got %v, want a wrong expected version at 1", n.ID(), err)
		}
	}
}

// The leader is shut down under steady load, again and again, and brought
// back: nothing acknowledged is lost or doubled and every replica ends the
// same.
func TestKillLeaderUnderLoad(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	g := startLoad(c, 8)
	const rounds = 8
	for r := range rounds {
		g.progress(t, 50, fmt.Sprintf("before kill %d", r+1))
		l := c.leader()
		c.stop(l.ID())
		g.progress(t, 50, fmt.Sprintf("after killing leader %s", l.ID()))
		c.start(l.ID(), false, false)
	}
	g.progress(t, 50, "with every node back")
	acks := g.finish(t)
	checkLog(t, c, acks)
	checkStaleLeaderFenced(t, c)
	t.Logf("%d appends acknowledged across %d leader kills", len(acks), rounds)
}

// The leader is cut off from the others while it still believes it leads:
// the others elect a new leader and go on; whatever the old one does with
// an expectation it held is refused; once healed it catches up.
func TestIsolateLeaderAndHeal(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	g := startLoad(c, 4)
	g.progress(t, 50, "before isolating")
	old := c.leader()
	stream := "fence-isolated"
	storetest.MustAppend(t, old.Store(), stream, events.NoStream, storetest.NewEvent())
	c.converged()

	c.isolate(old.ID())
	var others []*Node
	for _, n := range c.live() {
		if n != old {
			others = append(others, n)
		}
	}
	nl := c.leader(others...)
	// The new leader's side decides stream's next version...
	won := storetest.NewEvent()
	res := storetest.MustAppend(t, nl.Store(), stream, events.Exactly(1), won)
	// ...and the old leader, acting on what it knew, is refused: while
	// isolated it cannot commit, and after healing the check in Apply
	// fails it.
	stale := storetest.NewEvent()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := old.Store().Append(ctx, stream, events.Exactly(1), stale)
	cancel()
	if err == nil {
		t.Fatal("the isolated old leader acknowledged an append")
	}
	g.progress(t, 50, "while the old leader is isolated")

	c.heal(old.ID())
	_, err = old.Store().Append(storetest.Context(t), stream, events.Exactly(1), stale)
	var wev *events.WrongExpectedVersionError
	if !errors.As(err, &wev) || wev.Actual != 2 {
		t.Fatalf("stale append after healing: got %v, want a wrong expected version at 2", err)
	}
	g.progress(t, 50, "after healing")
	acks := g.finish(t)
	checkLog(t, c, acks)
	for _, n := range c.live() {
		evs := storetest.MustReadStream(t, n.Store(), stream, 1)
		if len(evs) != 2 || evs[1].ID != won.ID || evs[1].Position != res.FirstPosition {
			t.Fatalf("%s: %s has %d events, want 2 with the new leader's second", n.ID(), stream, len(evs))
		}
	}
}

// A follower is down while the others move on and compact their raft logs
// past it: it comes back through a snapshot (completing its replica, not
// rebuilding it) and the log tail.
func TestRestartFollowerAfterCompaction(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.TrailingLogs = 4
		cfg.SnapshotThreshold = 1 << 30 // only the snapshots the test asks for
		cfg.walSegmentSize = 16 << 10   // so that compaction deletes segments
	})
	g := startLoad(c, 4)
	g.progress(t, 40, "before stopping a follower")
	l := c.leader()
	var f *Node
	for _, n := range c.live() {
		if n != l {
			f = n
		}
	}
	fid := f.ID()
	stoppedAt := f.raft.LastIndex()
	c.stop(fid)
	g.progress(t, 200, "with a follower down")
	for _, n := range c.live() {
		if err := n.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", n.ID(), err)
		}
	}
	g.progress(t, 40, "after compacting")
	back := c.start(fid, false, false)
	t.Logf("%s stopped at raft index %d; the leader's log now starts after its snapshot at %s", fid, stoppedAt, l.raft.Stats()["last_snapshot_index"])
	g.progress(t, 40, "with the follower back")
	acks := g.finish(t)
	checkLog(t, c, acks)
	if back.fsm.restores.Load() == 0 {
		t.Fatalf("%s caught up without installing a snapshot", fid)
	}
	checkStaleLeaderFenced(t, c)
}

// Replaying raft entries after a restart applies nothing twice, and skips
// appends that failed the first time even where they would succeed now:
// an Exactly(v) refused while the stream was behind v.
func TestRestartReplaysExactlyOnce(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			c := newTestCluster(t, 1, nil)
			n := c.leader()
			st := n.Store()
			storetest.MustAppend(t, st, "replay-a", events.NoStream, storetest.NewEvent())
			if snapshot {
				if err := n.raft.Snapshot().Error(); err != nil {
					t.Fatal(err)
				}
			}
			// Refused now (the stream is at 1), but would pass once it is at 3.
			_, err := st.Append(storetest.Context(t), "replay-a", events.Exactly(3), storetest.NewEvent())
			if !errors.Is(err, events.ErrWrongExpectedVersion) {
				t.Fatalf("Exactly(3) at version 1: %v", err)
			}
			storetest.MustAppend(t, st, "replay-a", events.Exactly(1), storetest.NewEvents(2)...)
			storetest.MustAppend(t, st, "replay-b", events.Any, storetest.NewEvents(3)...)
			before := storetest.MustReadAll(t, st, 0, events.Filter{})
			last := n.raft.LastIndex()

			c.stop(n.ID())
			n = c.start(n.ID(), false, false)
			// raft counts an entry applied when it hands it to the FSM,
			// before the FSM has run it: wait for the FSM's own head too.
			waitFor(t, 20*time.Second, "the restarted node to apply its log", func() bool {
				return n.raft.AppliedIndex() >= last && n.fsm.headNow().Position >= uint64(len(before))
			})
			after := storetest.MustReadAll(t, n.Store(), 0, events.Filter{})
			if len(after) != len(before) {
				t.Fatalf("after restart the log has %d events, before %d", len(after), len(before))
			}
			for i := range before {
				if d := storetest.EventDiff(before[i], after[i]); d != "" {
					t.Fatalf("position %d changed across restart: %s", i+1, d)
				}
			}
			if n.fsm.replayed.Load() == 0 {
				t.Fatal("the restarted node replayed nothing")
			}
			if h := n.fsm.headNow(); h.Position != uint64(len(before)) {
				t.Fatalf("applied head after replay %+v, want position %d", h, len(before))
			}
			res := storetest.MustAppend(t, n.Store(), "replay-a", events.Exactly(3), storetest.NewEvent())
			if res.FirstPosition != uint64(len(before))+1 {
				t.Fatalf("append after restart at position %d, want %d", res.FirstPosition, len(before)+1)
			}
		})
	}
}
