package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	lbraft "github.com/logbook-fleet/logbook/cluster/raft"
	"github.com/logbook-fleet/logbook/events"
)

// The raft-append scenario: durable appends through cluster/raft, a 1-node
// cluster against a 3-node one on loopback in the same run (real TCP
// transport, a directory per node, all nodes in this process), and the
// failover time of the 3-node cluster.

const raftWriters = 64

func init() {
	raft := func(nodes int64) Selector {
		return Selector{"logbook", []Param{P("nodes", nodes), P("writers", raftWriters)}}
	}
	register(Scenario{
		Name:  "raft-append",
		About: "64 writers appending 256 B events with expected version through a 1-node and a 3-node raft cluster on loopback; leader failover time",
		Run:   runRaftAppend,
		Targets: []Target{
			{Name: "raft-3n-vs-50k", Measured: raft(3), Constant: 50000, Factor: 1},
			{Name: "raft-3n-vs-1n", Measured: raft(3), Reference: raft(1), Factor: 0.3},
			// The failover subject's ops/s is 1 / median seconds: under 3 s
			// is at least 1/3 of one failover per second.
			{Name: "raft-failover-under-3s", Measured: Selector{"logbook-failover-inv", []Param{P("nodes", 3)}}, Constant: 1, Factor: 1.0 / 3},
		},
	})
}

// The nodes run with `logbook serve`'s garbage-collector settings
// (serveRuntime): they are what `logbook serve --cluster` runs. With Go's
// default GOGC=100 the 3-node case spent ~10% more CPU per event.
func runRaftAppend(ctx context.Context, cfg *Config) ([]Result, error) {
	defer serveRuntime()()
	appendCase := func(nodes int) Case {
		return Case{"logbook",
			[]Param{P("nodes", int64(nodes)), P("writers", raftWriters), P("batch", 1), P("payload_bytes", payloadBytes)},
			func(ctx context.Context) (LoadStats, error) { return raftAppend(ctx, cfg, nodes) }}
	}
	results, err := RunCases(ctx, cfg, "raft-append", []Case{appendCase(1), appendCase(3)})
	if err != nil {
		return results, err
	}
	if cfg.Wants("logbook-failover-inv") {
		results = append(results, raftFailover(ctx, cfg))
	}
	return results, nil
}

// benchCluster is an in-process cluster on loopback TCP.
type benchCluster struct {
	cfg   *Config
	nodes []*lbraft.Node
	confs []lbraft.Config
	dir   string
}

func raftConfig(id, dir string) lbraft.Config {
	c := lbraft.DefaultConfig()
	c.ID, c.Dir, c.Bind = id, dir, "127.0.0.1:0"
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

func startCluster(ctx context.Context, cfg *Config, n int) (*benchCluster, error) {
	dir, err := cfg.TempDir("raft")
	if err != nil {
		return nil, err
	}
	bc := &benchCluster{cfg: cfg, dir: dir}
	for i := range n {
		c := raftConfig(fmt.Sprintf("n%d", i+1), fmt.Sprintf("%s/n%d", dir, i+1))
		if i == 0 {
			c.Bootstrap = true
		} else {
			c.Join = []string{bc.nodes[0].Addr()}
		}
		node, err := lbraft.Open(ctx, c)
		if err != nil {
			return nil, errors.Join(err, bc.close())
		}
		c.Bind, c.Bootstrap, c.Join = node.Addr(), false, nil // a restart keeps its address
		bc.nodes, bc.confs = append(bc.nodes, node), append(bc.confs, c)
	}
	if _, err := bc.leader(ctx); err != nil {
		return nil, errors.Join(err, bc.close())
	}
	return bc, nil
}

// leader waits for a leader among the live nodes.
func (bc *benchCluster) leader(ctx context.Context) (int, error) {
	for {
		for i, n := range bc.nodes {
			if n != nil && n.IsLeader() {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (bc *benchCluster) close() error {
	var errs []error
	for _, n := range bc.nodes {
		if n != nil {
			errs = append(errs, n.Close())
		}
	}
	return errors.Join(append(errs, os.RemoveAll(bc.dir))...)
}

// raftAppend measures 64 writers, each appending one event per call to its
// own stream with the exact expected version, through the leader's Store
// (where the server runs its entity host).
func raftAppend(ctx context.Context, cfg *Config, nodes int) (LoadStats, error) {
	bc, err := startCluster(ctx, cfg, nodes)
	if err != nil {
		return LoadStats{}, err
	}
	li, _ := bc.leader(ctx)
	st := bc.nodes[li].Store()
	data := payload(payloadBytes)
	stats, err := RunLoad(ctx, Load{
		Writers: raftWriters,
		PerCall: 1,
		Warmup:  cfg.Warmup,
		Measure: cfg.Duration,
		NewOp: func(w int) (Op, error) {
			stream := fmt.Sprintf("bench-w%d", w)
			var version uint64
			return func(ctx context.Context) error {
				ev := events.Event{ID: events.NewID(), Type: benchType, Data: data}
				res, err := st.Append(ctx, stream, events.Exactly(version), ev)
				if err != nil {
					return fmt.Errorf("append to %s at version %d: %w", stream, version, err)
				}
				version = res.LastVersion
				return nil
			}, nil
		},
	})
	return stats, errors.Join(err, bc.close())
}

// raftFailover kills (closes, without handing leadership over) the leader
// of a 3-node cluster under light load, several times, and measures until
// the first append issued after the kill is acknowledged by a surviving
// node; the killed node then rejoins from its directory. The result's
// ops_per_s is 1 / the median, its p50_us the median and p99_us the worst.
func raftFailover(ctx context.Context, cfg *Config) Result {
	runs := 7
	if cfg.Quick {
		runs = 5
	}
	params := []Param{P("nodes", 3), P("runs", int64(runs))}
	fail := func(err error) Result { return failed("raft-append", "logbook-failover-inv", err, params...) }
	bc, err := startCluster(ctx, cfg, 3)
	if err != nil {
		return fail(err)
	}
	defer bc.close()
	data := payload(payloadBytes)
	var times []time.Duration
	for run := range runs {
		li, err := bc.leader(ctx)
		if err != nil {
			return fail(err)
		}
		survivor := bc.nodes[(li+1)%3]
		// Light load before the kill, so the cluster is warm.
		for k := range 20 {
			ev := events.Event{ID: events.NewID(), Type: benchType, Data: data}
			if _, err := survivor.Store().Append(ctx, fmt.Sprintf("failover-r%d", run), events.Exactly(uint64(k)), ev); err != nil {
				return fail(fmt.Errorf("warm-up append: %w", err))
			}
		}
		killed := time.Now()
		if err := bc.nodes[li].Close(); err != nil {
			return fail(fmt.Errorf("kill leader: %w", err))
		}
		bc.nodes[li] = nil
		ev := events.Event{ID: events.NewID(), Type: benchType, Data: data}
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = survivor.Store().Append(actx, fmt.Sprintf("failover-r%d", run), events.Exactly(20), ev)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("first append after the kill: %w", err))
		}
		d := time.Since(killed)
		times = append(times, d)
		cfg.Logf("%-40s run %d: %v", "logbook-failover nodes=3", run+1, d.Round(time.Millisecond))
		node, err := lbraft.Open(ctx, bc.confs[li])
		if err != nil {
			return fail(fmt.Errorf("restart %s: %w", bc.confs[li].ID, err))
		}
		bc.nodes[li] = node
		if _, err := node.ReadBarrier(ctx); err != nil {
			return fail(fmt.Errorf("restarted %s catching up: %w", bc.confs[li].ID, err))
		}
	}
	slices.Sort(times)
	median := times[len(times)/2]
	var total time.Duration
	for _, d := range times {
		total += d
	}
	return Result{
		Scenario: "raft-append", Subject: "logbook-failover-inv", Params: params,
		Events: int64(runs), Seconds: total.Seconds(), OpsPerS: 1 / median.Seconds(),
		HasLatency: true, P50us: float64(median.Microseconds()), P99us: float64(times[len(times)-1].Microseconds()),
	}
}
