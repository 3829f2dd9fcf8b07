package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The leader is killed with SIGKILL under steady load, again and again,
// and restarted: nothing acknowledged is lost or doubled and every replica
// ends the same.
func TestKillLeaderProcesses(t *testing.T) {
	rounds := 3
	if os.Getenv("LOGBOOK_CLUSTER_LONG") != "" {
		rounds = 20
	}
	c := newCluster(t, 3)
	c.launch()
	g := c.startLoad(8)
	for r := range rounds {
		g.progress(100, fmt.Sprintf("before kill %d", r+1))
		l := c.leader()
		killed := time.Now()
		c.kill(l)
		g.progress(1, "after the kill")
		t.Logf("round %d: killed leader %s; first append acknowledged %v later", r+1, l.id, time.Since(killed).Round(time.Millisecond))
		g.progress(100, "with the leader down")
		c.start(l) // rejoins with its existing state
	}
	g.progress(100, "with every node back")
	acks := g.finish()
	log := c.checkLog(acks)
	t.Logf("%d appends acknowledged across %d SIGKILLs of the leader; head %d", len(acks), rounds, len(log))
}

// The leader is cut off from the others while it still believes it leads
// (its clients still reach it): the others elect a new leader and go on,
// the old one steps down and acknowledges nothing, and whatever it was
// asked to append on what it knew is refused once the network heals and
// it catches up.
func TestIsolateLeaderProcesses(t *testing.T) {
	c := newCluster(t, 3)
	nw := connect(t, c)
	c.launch()
	g := c.startLoad(8)
	g.progress(100, "before isolating")

	old := c.leader()
	const fence = "fence-isolated"
	mustAppend(t, old, fence, 0, uuid.Must(uuid.NewV7()))

	nw.isolate(old)
	cut := time.Now()
	nl := c.leader(c.others(old)...)
	t.Logf("isolated leader %s; %s leads %v later", old.id, nl.id, time.Since(cut).Round(time.Millisecond))
	// The new leader's side decides the fence stream's next version...
	won := uuid.Must(uuid.NewV7())
	wonAt := mustAppend(t, nl, fence, 1, won)
	// ...and the old leader, asked to append on what it knew, cannot
	// commit it.
	stale := uuid.Must(uuid.NewV7())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	res, code, err := appendVia(ctx, old, fence, 1, stale)
	cancel()
	if err == nil && code == http.StatusOK {
		t.Fatalf("the isolated old leader acknowledged an append at %+v", res)
	}
	waitFor(t, 30*time.Second, "the isolated old leader to step down", func() bool {
		var h head
		return getJSON(old.http, "/head", &h) == nil && !h.Leader
	})
	g.progress(100, "while the old leader is isolated")

	nw.heal(old)
	// Through the old leader, now a follower, the stale append reaches the
	// new leader and fails its check.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	for {
		res, code, err = appendVia(ctx, old, fence, 1, stale)
		if (err == nil && code != http.StatusServiceUnavailable) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err != nil || code != http.StatusConflict {
		t.Fatalf("stale append through the healed old leader: %v, %d %+v; want a wrong expected version", err, code, res)
	}
	g.progress(100, "after healing")
	acks := g.finish()
	log := c.checkLog(acks)
	var fenced []logEvent
	for _, ev := range log {
		if ev.Stream == fence {
			fenced = append(fenced, ev)
		}
	}
	if len(fenced) != 2 || fenced[1].ID != won || fenced[1].Position != wonAt.FirstPosition {
		t.Fatalf("%s holds %+v; want 2 events, the new leader's second at %d", fence, fenced, wonAt.FirstPosition)
	}
	t.Logf("%d appends acknowledged across the partition; head %d", len(acks), len(log))
}

// A follower is down while the others move on and compact their raft logs
// past it: it comes back through a raft snapshot (InstallSnapshot) and the
// log tail.
//
// raft-wal deletes only whole segments (64 MiB) and serves entries from
// the segment it writes to even below the log's first index, so a
// compaction that keeps trailing entries forces no snapshot until tens of
// MiB have gone by. Instead the nodes keep no trailing entries and
// snapshot whenever there is a new entry: with the writers paused, the
// others' next snapshot is at their last entry, and its compaction drops
// every segment, the one being written included.
func TestRestartFollowerAfterCompaction(t *testing.T) {
	c := newCluster(t, 3)
	for _, p := range c.nodes {
		p.args = append(p.args, "-snapshot-threshold", "1", "-trailing-logs", "0", "-snapshot-interval", "200ms")
	}
	c.launch()
	g := c.startLoad(8)
	g.progress(100, "before stopping a follower")
	l := c.leader()
	f := c.others(l)[0]
	c.kill(f)
	g.progress(100, "with a follower down")

	// The follower's raft log ends at or before the leader's last index
	// now: once the others snapshot past it, they hold none of the entries
	// it needs.
	var st status
	waitFor(t, 30*time.Second, "the leader's status", func() bool { return getJSON(l.http, "/status", &st) == nil })
	var stoppedBy uint64
	for _, m := range st.Members {
		stoppedBy = max(stoppedBy, m.LastLogIndex)
	}
	survivors := c.others(f)
	g.pause()
	mustAppend(t, l, "compaction-1", 0, uuid.Must(uuid.NewV7()))
	waitFor(t, 60*time.Second, "the others to snapshot at their last entry", func() bool {
		for _, p := range survivors {
			var st status
			if getJSON(p.http, "/status", &st) != nil {
				return false
			}
			i := slices.IndexFunc(st.Members, func(m member) bool { return m.ID == p.id })
			s := snapshotIndexes(t, p)
			if i < 0 || len(s) == 0 || slices.Max(s) <= stoppedBy || slices.Max(s) != st.Members[i].LastLogIndex {
				return false
			}
		}
		return true
	})
	g.resume()
	g.progress(20, "after compacting")

	// Back without snapshots of its own, so that one past stoppedBy in its
	// directory came from the leader.
	c.start(f, "-snapshot-threshold", "1000000000")
	g.progress(100, "with the follower back")
	acks := g.finish()
	log := c.checkLog(acks)
	s := snapshotIndexes(t, f)
	if len(s) == 0 || slices.Max(s) <= stoppedBy {
		t.Fatalf("%s stopped by raft index %d and caught up without installing a snapshot (it holds %v)", f.id, stoppedBy, s)
	}
	t.Logf("%s stopped by raft index %d, came back through a snapshot at %d; %d appends acknowledged, head %d", f.id, stoppedBy, slices.Max(s), len(acks), len(log))
}
