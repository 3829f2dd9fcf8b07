package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/cluster/bridge"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
	"github.com/logbook-fleet/logbook/test/edge"
)

// command-rtt: a control plane in-process (embedded store, entity host,
// embedded NATS, bridge) with rttAgents simulated agents (test/edge), each
// an own NATS connection with its unit's credentials, in a fleet process
// of their own (see fleet.go), as units are on machines of their own.
//
//   - logbook (agents, rate): commands issued open-loop at rate/s, round
//     robin over the units; latency per command from IssueUnitCommand
//     returning to its UnitCommandSucceeded being durable (seen by a
//     Subscribe on the unit category). Commands issued in the measured
//     window count; ops_per_s is those completed / the window. Its
//     "logbook-inv" twin carries 1e6/p99_us as ops_per_s, so that "p99
//     under 10 ms" is a target (>= 100/s) in the usual form.
//   - logbook-idle (agents, rss_bytes): the fleet grown to idleAgents
//     connected agents (capped by the open-file limit), one heartbeat
//     each, a few seconds of quiet, then the control plane's resident set
//     after a GC (fleet_rss_bytes: the agents' processes, for reference).
//     Its "-inv" twin carries 1 GiB / rss_bytes so "under 1 GiB" is a
//     target (>= 1).
func init() {
	register(Scenario{
		Name:  "command-rtt",
		About: "issue-to-result latency of edge commands through the bridge to 1,000 simulated agents at 2,000 commands/s; rss with 10,000 agents connected",
		Run:   runCommandRTT,
		Targets: []Target{
			{Name: "command-rtt-p99-under-10ms-at-2000/s", Measured: Selector{Subject: "logbook-inv", Params: []Param{P("rate", rttRate)}}, Constant: 100, Factor: 1},
			{Name: "idle-agents-rss-under-1GiB", Measured: Selector{Subject: "logbook-idle-inv"}, Constant: 1, Factor: 1},
		},
	})
}

const (
	rttAgents  = 1000
	rttRate    = 2000
	idleAgents = 10_000
	// rttDrain bounds the wait for the window's last results.
	rttDrain = 30 * time.Second
)

// The control plane here runs with `logbook serve`'s garbage-collector
// settings (serveRuntime), as this process is the control plane's. The
// fleet process keeps Go's defaults.
func runCommandRTT(ctx context.Context, cfg *Config) ([]Result, error) {
	defer serveRuntime()()
	dir, err := cfg.TempDir("command-rtt")
	if err != nil {
		return nil, err
	}
	params := []Param{P("agents", rttAgents), P("rate", rttRate)}
	cp, err := edge.StartControlPlane(ctx, dir, bridge.DefaultConfig())
	if err != nil {
		return []Result{failed("command-rtt", "logbook", err, params...)}, nil
	}
	defer cp.Close()
	cfg.Logf("command-rtt: registering %d units and connecting their agents", rttAgents)
	passwords, err := cp.AddUnits(ctx, 0, rttAgents, 16)
	if err != nil {
		return []Result{failed("command-rtt", "logbook", err, params...)}, nil
	}
	fleet, err := startFleet(ctx, cp, 0, passwords, true)
	if err != nil {
		return []Result{failed("command-rtt", "logbook", err, params...)}, nil
	}
	defer func() {
		if err := fleet.close(); err != nil {
			cfg.Logf("command-rtt: %v", err)
		}
	}()

	var results []Result
	r, err := measureRTT(ctx, cfg, cp)
	if err != nil {
		results = append(results, failed("command-rtt", "logbook", err, params...))
	} else {
		r.Scenario, r.Subject, r.Params = "command-rtt", "logbook", params
		results = append(results, r)
		if r.P99us > 0 {
			results = append(results, Result{Scenario: "command-rtt", Subject: "logbook-inv", Params: params,
				Events: r.Events, Seconds: r.Seconds, OpsPerS: 1e6 / r.P99us})
		}
		cfg.Logf("%-40s %12s commands/s  p50 %7s µs  p99 %7s µs", "logbook agents=1000 rate=2000",
			fmtInt(r.OpsPerS), fmtFloat(r.P50us), fmtFloat(r.P99us))
	}
	if ctx.Err() != nil {
		return results, ctx.Err()
	}

	// Grow the fleet for the memory measurement.
	n := idleAgents
	if lim := edge.OpenFileLimit(); lim > 0 && lim-512 < n {
		n = lim - 512
		cfg.Logf("command-rtt: open-file limit %d allows %d agents, not %d", lim, n, idleAgents)
	}
	cfg.Logf("command-rtt: growing the fleet to %d agents", n)
	t0 := time.Now()
	more, err := addAgents(ctx, cp, rttAgents, n)
	if more != nil {
		defer func() {
			if err := more.close(); err != nil {
				cfg.Logf("command-rtt: %v", err)
			}
		}()
	}
	if err != nil {
		results = append(results, failed("command-rtt", "logbook-idle", err, P("agents", int64(n))))
		return results, nil
	}
	connectSecs := time.Since(t0).Seconds()
	select { // let the heartbeats' effects settle
	case <-ctx.Done():
		return results, ctx.Err()
	case <-time.After(3 * time.Second):
	}
	rss, heap := residentMemory()
	fleetRSS := fleet.rss() + more.rss()
	status := "under"
	if rss >= rssBudget {
		status = "OVER"
	}
	cfg.Logf("%-40s rss %d MiB, heap %d MiB (%s the 1 GiB budget); connected + heartbeat in %.1f s; the agents' processes %d MiB",
		fmt.Sprintf("logbook-idle agents=%d", n), rss>>20, heap>>20, status, connectSecs, fleetRSS>>20)
	ip := []Param{P("agents", int64(n)), P("rss_bytes", rss), P("heap_bytes", heap), P("fleet_rss_bytes", fleetRSS)}
	results = append(results,
		Result{Scenario: "command-rtt", Subject: "logbook-idle", Params: ip, Events: int64(n), Seconds: connectSecs, OpsPerS: float64(n) / connectSecs},
		Result{Scenario: "command-rtt", Subject: "logbook-idle-inv", Params: ip, Events: int64(n), Seconds: connectSecs, OpsPerS: float64(rssBudget) / float64(rss)},
	)
	return results, nil
}

// addAgents registers units from..to-1 and connects their agents, in a
// fleet process, each sending one heartbeat.
func addAgents(ctx context.Context, cp *edge.ControlPlane, from, to int) (*fleetProc, error) {
	passwords, err := cp.AddUnits(ctx, from, to-from, 16)
	if err != nil {
		return nil, err
	}
	return startFleet(ctx, cp, from, passwords, true)
}

type rttEntry struct {
	issued, done time.Time
	measured     bool
}

// measureRTT issues commands at rttRate for warm-up + window and returns
// the latencies of those issued in the window.
func measureRTT(ctx context.Context, cfg *Config, cp *edge.ControlPlane) (Result, error) {
	head, err := cp.Store.Head(ctx)
	if err != nil {
		return Result{}, err
	}
	var (
		mu      sync.Mutex
		entries = make(map[string]*rttEntry)
		hist    histogram
		pending atomic.Int64 // measured commands without a result
		drained = make(chan struct{}, 1)
	)
	finish := func(e *rttEntry) { // with mu held, both times known
		if !e.measured {
			return
		}
		hist.Record(e.done.Sub(e.issued))
		if pending.Add(-1) == 0 {
			select {
			case drained <- struct{}{}:
			default:
			}
		}
	}
	sctx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	subErr := make(chan error, 1)
	go func() {
		filter := events.Filter{Categories: []string{"unit"}, Types: []string{"logbook.v1.UnitCommandSucceeded", "logbook.v1.UnitCommandFailed", "logbook.v1.UnitCommandExpired"}}
		for ev, err := range cp.Store.Subscribe(sctx, head.Position+1, filter) {
			now := time.Now()
			if err != nil {
				if sctx.Err() == nil {
					subErr <- err
				}
				return
			}
			if ev.Type != "logbook.v1.UnitCommandSucceeded" {
				subErr <- fmt.Errorf("a command ended with %s in %s", ev.Type, ev.Stream)
				return
			}
			var m logbookv1.UnitCommandSucceeded
			if err := proto.Unmarshal(ev.Data, &m); err != nil {
				subErr <- err
				return
			}
			mu.Lock()
			e := entries[m.GetCommandId()]
			if e == nil {
				e = &rttEntry{}
				entries[m.GetCommandId()] = e
			}
			e.done = now
			if !e.issued.IsZero() {
				finish(e)
				delete(entries, m.GetCommandId())
			}
			mu.Unlock()
		}
	}()

	interval := time.Second / rttRate
	start := time.Now().Add(10 * time.Millisecond)
	windowStart := start.Add(cfg.Warmup)
	windowEnd := windowStart.Add(cfg.Duration)
	total := int64((cfg.Warmup + cfg.Duration) / interval)
	var next atomic.Int64
	var measuredIssued atomic.Int64
	ictx, stopIssue := context.WithCancel(ctx)
	defer stopIssue()
	deadline := time.Now().Add(10 * time.Minute)
	err = edge.Parallel(ictx, 64, int(total), func(int) error {
		k := next.Add(1) - 1
		at := start.Add(time.Duration(k) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		inWindow := !at.Before(windowStart) && at.Before(windowEnd)
		id := "rtt-" + strconv.FormatInt(k, 10)
		if inWindow {
			pending.Add(1)
			measuredIssued.Add(1)
		}
		if err := cp.Issue(ictx, edge.UnitName(int(k%rttAgents)), id, deadline); err != nil {
			return fmt.Errorf("issue %s: %w", id, err)
		}
		issued := time.Now()
		mu.Lock()
		e := entries[id]
		if e == nil {
			entries[id] = &rttEntry{issued: issued, measured: inWindow}
		} else {
			e.issued, e.measured = issued, inWindow
			finish(e)
			delete(entries, id)
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	if pending.Load() > 0 {
		select {
		case <-drained:
		case err := <-subErr:
			return Result{}, err
		case <-time.After(rttDrain):
			return Result{}, fmt.Errorf("%d of %d commands without a result %v after the window", pending.Load(), measuredIssued.Load(), rttDrain)
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	select {
	case err := <-subErr:
		return Result{}, err
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	secs := cfg.Duration.Seconds()
	n := int64(hist.Count())
	return Result{Events: n, Seconds: secs, OpsPerS: float64(n) / secs, HasLatency: true,
		P50us: hist.Quantile(0.50), P99us: hist.Quantile(0.99)}, nil
}
