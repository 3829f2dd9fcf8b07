package raft

import (
	"testing"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/storetest"
)

// The Store of a node passes the conformance suite, alone and as a follower
// of a 3-node cluster (so that every append is forwarded to the leader and
// every read served by the follower's replica).
func TestConformance(t *testing.T) {
	t.Run("OneNode", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) events.Store {
			c := newTestCluster(t, 1, nil)
			return c.leader().Store()
		})
	})
	t.Run("ThreeNodesFollower", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) events.Store {
			c := newTestCluster(t, 3, nil)
			l := c.leader()
			for _, n := range c.live() {
				if n != l {
					return n.Store()
				}
			}
			t.Fatal("no follower")
			return nil
		})
	})
	t.Run("ThreeNodesLeader", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) events.Store {
			c := newTestCluster(t, 3, nil)
			return c.leader().Store()
		})
	})
}
