package raft

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/storetest"
)

// leaderTask is what each node runs with RunAsLeader in the test: it reads
// the stream "lead-x" (after the barrier RunAsLeader applies) and appends
// to it with the version it read, as an entity host would.
type leaderTask struct {
	mu      sync.Mutex
	starts  map[string]int    // node -> times fn started
	running map[string]bool   // node -> fn running now
	first   map[string]uint64 // node -> version read when fn last started
	acked   atomic.Int64
	stale   atomic.Int64 // appends refused for a wrong expected version
}

func (lt *leaderTask) run(n *Node) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		st := n.Store()
		evs, err := storetest.Collect(st.ReadStream(ctx, "lead-x", 1))
		if err != nil && !errors.Is(err, events.ErrStreamNotFound) {
			return err
		}
		version := uint64(len(evs))
		lt.mu.Lock()
		if lt.running[n.ID()] {
			lt.mu.Unlock()
			return errors.New("two runs at once on one node")
		}
		lt.running[n.ID()] = true
		lt.starts[n.ID()]++
		lt.first[n.ID()] = version
		lt.mu.Unlock()
		defer func() {
			lt.mu.Lock()
			lt.running[n.ID()] = false
			lt.mu.Unlock()
		}()
		for ctx.Err() == nil {
			res, err := st.Append(ctx, "lead-x", events.Exactly(version), storetest.NewEvent())
			switch {
			case err == nil:
				version = res.LastVersion
				lt.acked.Add(1)
			case errors.Is(err, events.ErrWrongExpectedVersion):
				lt.stale.Add(1)
				return nil // another leader moved on: wait for the next term
			case ctx.Err() != nil:
			default:
				return err
			}
		}
		return nil
	}
}

func (lt *leaderTask) runningOn() []string {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var out []string
	for id, r := range lt.running {
		if r {
			out = append(out, id)
		}
	}
	return out
}

// RunAsLeader runs the task only where the node leads; a deposed leader's
// task is cancelled and has returned; the new leader's task starts from
// everything the old one got acknowledged.
func TestRunAsLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lt := &leaderTask{starts: map[string]int{}, running: map[string]bool{}, first: map[string]uint64{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	results := make(chan error, 3)
	for _, n := range c.live() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- n.RunAsLeader(ctx, lt.run(n))
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	old := c.leader()
	waitFor(t, 20*time.Second, "the leader's task to append", func() bool { return lt.acked.Load() >= 20 })
	c.isolate(old.ID())
	ackedBefore := lt.acked.Load()
	waitFor(t, 20*time.Second, "the old leader's task to stop and another to run", func() bool {
		on := lt.runningOn()
		return len(on) == 1 && on[0] != old.ID()
	})
	newID := lt.runningOn()[0]
	lt.mu.Lock()
	first := lt.first[newID]
	lt.mu.Unlock()
	if first < uint64(ackedBefore) {
		t.Fatalf("the new leader's task started at version %d, before the %d appends acknowledged to the old one", first, ackedBefore)
	}
	c.heal(old.ID())
	waitFor(t, 20*time.Second, "the new leader's task to append", func() bool { return lt.acked.Load() >= ackedBefore+20 })
	cancel()
	wg.Wait()
	for range 3 {
		if err := <-results; !errors.Is(err, context.Canceled) {
			t.Fatalf("RunAsLeader returned %v, want context.Canceled", err)
		}
	}
	head := c.converged()
	evs := storetest.MustReadStream(t, c.live()[0].Store(), "lead-x", 1)
	// Every acknowledged append is there; beyond them, at most one per run
	// that was cancelled with an append in flight (committed, but its
	// caller had gone).
	lt.mu.Lock()
	runs := 0
	for _, k := range lt.starts {
		runs += k
	}
	lt.mu.Unlock()
	if n, acked := int64(len(evs)), lt.acked.Load(); n < acked || n > acked+int64(runs) {
		t.Fatalf("lead-x holds %d events; %d appends were acknowledged in %d runs (head %d)", n, acked, runs, head.Position)
	}
}
