package raft

import (
	"context"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/storetest"
)

func openTCP(t *testing.T, id string, tune func(*Config)) *Node {
	t.Helper()
	cfg := testConfig(id, t.TempDir())
	cfg.Bind = "127.0.0.1:0"
	if tune != nil {
		tune(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Three nodes on loopback TCP, one port each for raft and node calls:
// bootstrap, join, forwarded appends, status, read barrier, leadership
// transfer and removal.
func TestTCPMembership(t *testing.T) {
	n1 := openTCP(t, "n1", func(c *Config) { c.Bootstrap = true })
	n2 := openTCP(t, "n2", func(c *Config) { c.Join = []string{n1.Addr()} })
	n3 := openTCP(t, "n3", func(c *Config) { c.Join = []string{n2.Addr()} }) // forwarded to the leader
	nodes := []*Node{n1, n2, n3}
	ctx := storetest.Context(t)

	var follower *Node
	for _, n := range nodes {
		if !n.IsLeader() {
			follower = n
		}
	}
	res := storetest.MustAppend(t, follower.Store(), "tcp-a", events.NoStream, storetest.NewEvents(3)...)
	// The follower reads its own write at once.
	if got := storetest.MustReadStream(t, follower.Store(), "tcp-a", 1); len(got) != 3 || got[2].Hash != res.Hash {
		t.Fatalf("follower reads %d events of its own append", len(got))
	}
	_, err := follower.Store().Append(ctx, "tcp-a", events.NoStream, storetest.NewEvent())
	if !errIs(err, events.ErrWrongExpectedVersion) {
		t.Fatalf("forwarded conflicting append: %v", err)
	}
	for _, n := range nodes {
		h, err := n.ReadBarrier(ctx)
		if err != nil || h.Position < res.LastPosition {
			t.Fatalf("ReadBarrier on %s = %+v, %v; want at least position %d", n.ID(), h, err, res.LastPosition)
		}
	}

	waitStatus := func(n *Node, members int) Status {
		var st Status
		waitFor(t, 20*time.Second, "a status with every member at the same head", func() bool {
			var err error
			if st, err = n.Status(ctx); err != nil || len(st.Members) != members || st.LeaderID == "" {
				return false
			}
			for _, m := range st.Members {
				if m.Err != nil || m.Head != st.Members[0].Head || m.Head.Position < res.LastPosition {
					return false
				}
			}
			return true
		})
		return st
	}
	st := waitStatus(n2, 3)
	for _, m := range st.Members {
		if m.Head.Hash != res.Hash {
			t.Fatalf("member %s head %+v, want hash %s", m.ID, m.Head, res.Hash)
		}
	}

	// Hand leadership to a chosen follower, from a node that is not the leader.
	oldID, _ := n1.Leader()
	var target, from *Node
	for _, n := range nodes {
		if n.ID() != oldID {
			if target == nil {
				target = n
			} else {
				from = n
			}
		}
	}
	if err := from.TransferLeadership(ctx, target.ID()); err != nil {
		t.Fatalf("TransferLeadership(%s): %v", target.ID(), err)
	}
	waitFor(t, 20*time.Second, "the new leader", func() bool { return target.IsLeader() })
	storetest.MustAppend(t, from.Store(), "tcp-a", events.Exactly(3), storetest.NewEvent())

	// Remove the node that is neither, through it.
	if err := from.Remove(ctx, from.ID()); err != nil {
		t.Fatalf("Remove(%s): %v", from.ID(), err)
	}
	st = waitStatus(target, 2)
	for _, m := range st.Members {
		if m.ID == from.ID() {
			t.Fatalf("%s is still a member after removal", from.ID())
		}
	}
	storetest.MustAppend(t, target.Store(), "tcp-a", events.Exactly(4), storetest.NewEvent())
}
