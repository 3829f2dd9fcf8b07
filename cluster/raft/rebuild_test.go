package raft

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/storetest"
)

// A replica that lost its files, or whose files a machine crash left torn
// (the replica is not synced: the raft log is the write-ahead log), is
// rebuilt from the node's raft snapshot and log when the node starts.
func TestRebuildReplica(t *testing.T) {
	damage := map[string]func(t *testing.T, dir string){
		"Lost": func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "log")); err != nil {
				t.Fatal(err)
			}
		},
		"Torn": func(t *testing.T, dir string) {
			segs, err := filepath.Glob(filepath.Join(dir, "log", "log", "*.seg"))
			if err != nil || len(segs) == 0 {
				t.Fatalf("no segments to damage: %v", err)
			}
			if err := os.WriteFile(segs[0], []byte("torn"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, damage := range damage {
		for _, snapshot := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "", true: "AfterSnapshot"}[snapshot], func(t *testing.T) {
				c := newTestCluster(t, 3, nil)
				l := c.leader()
				storetest.MustAppend(t, l.Store(), "re-a", events.NoStream, storetest.NewEvents(5)...)
				var victim *Node
				for _, n := range c.live() {
					if n != l {
						victim = n
					}
				}
				if snapshot {
					c.converged()
					if err := victim.raft.Snapshot().Error(); err != nil {
						t.Fatal(err)
					}
				}
				storetest.MustAppend(t, l.Store(), "re-a", events.Exactly(5), storetest.NewEvents(3)...)
				c.converged()
				id := victim.ID()
				c.stop(id)
				damage(t, c.dirs[id])
				back := c.start(id, false, false)
				storetest.MustAppend(t, l.Store(), "re-b", events.NoStream, storetest.NewEvent())
				checkLog(t, c, nil)
				if got := storetest.MustReadStream(t, back.Store(), "re-a", 1); len(got) != 8 {
					t.Fatalf("rebuilt replica has %d events of re-a, want 8", len(got))
				}
			})
		}
	}
}
