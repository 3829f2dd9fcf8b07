package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// inmemNet carries node-to-node calls between in-process nodes, with
// links that tests cut and heal alongside raft's in-memory transports.
type inmemNet struct {
	mu       sync.Mutex
	handlers map[string]rpcHandler
	cut      map[[2]string]bool // from, to
}

func newInmemNet() *inmemNet {
	return &inmemNet{handlers: make(map[string]rpcHandler), cut: make(map[[2]string]bool)}
}

// endpoint is one node's view of an inmemNet.
type endpoint struct {
	net  *inmemNet
	addr string
}

func (e *endpoint) call(ctx context.Context, addr string, req *logbookv1.NodeRequest) (*logbookv1.NodeResponse, error) {
	e.net.mu.Lock()
	h, cut := e.net.handlers[addr], e.net.cut[[2]string{e.addr, addr}] || e.net.cut[[2]string{addr, e.addr}]
	e.net.mu.Unlock()
	if h == nil || cut {
		return nil, fmt.Errorf("call %s from %s: unreachable", addr, e.addr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return h(ctx, req), nil
}

func (e *endpoint) serve(h rpcHandler) {
	e.net.mu.Lock()
	e.net.handlers[e.addr] = h
	e.net.mu.Unlock()
}

func (e *endpoint) close() error {
	e.net.mu.Lock()
	delete(e.net.handlers, e.addr)
	e.net.mu.Unlock()
	return nil
}

// testCluster is an in-process cluster on raft's in-memory transport. Nodes
// keep their directories across restarts.
type testCluster struct {
	t     testing.TB
	net   *inmemNet
	mu    sync.Mutex
	nodes map[string]*Node // nil while down
	trans map[string]*hraft.InmemTransport
	dirs  map[string]string
	ids   []string
	tune  func(*Config)
}

func testConfig(id, dir string) Config {
	cfg := DefaultConfig()
	cfg.ID, cfg.Dir = id, dir
	// The production timeouts (500 ms heartbeat and election). Shorter
	// ones made the fault tests quicker, but a leader replicating a large
	// entry under -race on a loaded 2-core machine lost its leadership to
	// a missed heartbeat and the conformance suite's largest append timed
	// out in a storm of elections: at 100 ms often, at 300 ms once in a
	// run of four packages at a time.
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.CallTimeout = 5 * time.Second
	cfg.Logger = testLogger()
	if l := os.Getenv("LOGBOOK_RAFT_TEST_LOG"); l != "" && l != "1" {
		cfg.RaftLogLevel = l
	}
	return cfg
}

func testLogger() *slog.Logger {
	if os.Getenv("LOGBOOK_RAFT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestCluster starts n nodes, the first bootstrapping, the others
// joining it, and waits until all are members.
func newTestCluster(t testing.TB, n int, tune func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{
		t: t, net: newInmemNet(),
		nodes: make(map[string]*Node), trans: make(map[string]*hraft.InmemTransport), dirs: make(map[string]string),
		tune: tune,
	}
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		c.ids = append(c.ids, id)
		c.dirs[id] = t.TempDir()
	}
	t.Cleanup(c.closeAll) // before the directories are removed
	for i, id := range c.ids {
		c.start(id, i == 0, i > 0)
	}
	return c
}

// start opens node id on its directory, with a fresh in-memory transport
// connected to every other live node.
func (c *testCluster) start(id string, bootstrap, join bool) *Node {
	c.t.Helper()
	addr, trans := hraft.NewInmemTransport(hraft.ServerAddress(id))
	c.mu.Lock()
	c.trans[id] = trans
	for other, ot := range c.trans {
		if other != id {
			trans.Connect(hraft.ServerAddress(other), ot)
			ot.Connect(addr, trans)
		}
	}
	c.mu.Unlock()
	cfg := testConfig(id, c.dirs[id])
	cfg.Bootstrap = bootstrap
	if join {
		cfg.Join = []string{c.ids[0]}
	}
	cfg.transport, cfg.net = trans, &endpoint{net: c.net, addr: id}
	if c.tune != nil {
		c.tune(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := Open(ctx, cfg)
	if err != nil {
		c.t.Fatalf("open %s: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = node
	c.mu.Unlock()
	return node
}

// stop closes node id (a crash as far as the others can tell).
func (c *testCluster) stop(id string) {
	c.t.Helper()
	c.mu.Lock()
	node := c.nodes[id]
	c.nodes[id] = nil
	trans := c.trans[id]
	delete(c.trans, id)
	for _, ot := range c.trans {
		ot.Disconnect(hraft.ServerAddress(id))
	}
	c.mu.Unlock()
	if trans != nil {
		trans.DisconnectAll()
	}
	if node != nil {
		if err := node.Close(); err != nil {
			c.t.Errorf("close %s: %v", id, err)
		}
	}
}

// isolate cuts node id off from every other node; heal reconnects it.
func (c *testCluster) isolate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for other, ot := range c.trans {
		if other == id {
			continue
		}
		ot.Disconnect(hraft.ServerAddress(id))
		c.trans[id].Disconnect(hraft.ServerAddress(other))
		c.net.mu.Lock()
		c.net.cut[[2]string{id, other}] = true
		c.net.mu.Unlock()
	}
}

func (c *testCluster) heal(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for other, ot := range c.trans {
		if other == id {
			continue
		}
		ot.Connect(hraft.ServerAddress(id), c.trans[id])
		c.trans[id].Connect(hraft.ServerAddress(other), ot)
		c.net.mu.Lock()
		delete(c.net.cut, [2]string{id, other})
		c.net.mu.Unlock()
	}
}

func (c *testCluster) closeAll() {
	for _, id := range c.ids {
		c.stop(id)
	}
}

func (c *testCluster) live() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, id := range c.ids {
		if n := c.nodes[id]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader waits until exactly one live node among those given (default: all
// live) leads and returns it.
func (c *testCluster) leader(among ...*Node) *Node {
	c.t.Helper()
	if len(among) == 0 {
		among = c.live()
	}
	var found *Node
	waitFor(c.t, 20*time.Second, "a single leader", func() bool {
		found = nil
		for _, n := range among {
			if n.IsLeader() {
				if found != nil {
					return false
				}
				found = n
			}
		}
		return found != nil
	})
	return found
}

// converged waits until every live node has applied the same head and its
// replica verifies to it, and returns that head.
func (c *testCluster) converged() events.Head {
	c.t.Helper()
	var head events.Head
	waitFor(c.t, 30*time.Second, "every live node at the same head", func() bool {
		nodes := c.live()
		for i, n := range nodes {
			h, err := n.Store().Head(context.Background())
			if err != nil || h != n.fsm.headNow() {
				return false
			}
			if i == 0 {
				head = h
			} else if h != head {
				return false
			}
		}
		return true
	})
	// Appends may go on (callers converge under load): each chain must
	// verify up to at least head and hold head's hash at its position.
	for _, n := range c.live() {
		v, err := n.Store().Verify(context.Background())
		if err != nil || v.Position < head.Position {
			c.t.Fatalf("Verify on %s = %+v, %v; want at least %+v", n.ID(), v, err, head)
		}
		if head.Position == 0 {
			continue
		}
		for ev, err := range n.Store().ReadAll(context.Background(), head.Position, events.Filter{}) {
			if err != nil || ev.Position != head.Position || ev.Hash != head.Hash {
				c.t.Fatalf("%s at position %d: %+v, %v; want hash %x", n.ID(), head.Position, ev, err, head.Hash)
			}
			break
		}
	}
	return head
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// errIs reports whether err wraps any of targets.
func errIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
