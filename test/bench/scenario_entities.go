package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
	"github.com/logbook-fleet/logbook/test/edge"
)

// The entity scenarios measure the entity host (actors.Host) on the
// embedded store.
//
//   - recover: recover one entity from 1,000 events, without a snapshot
//     and from a snapshot at its last version (Passivate, then Read), with
//     a counter kind defined here (streams "counter-<id>", state an
//     Int64Value, command and event an Int64Value delta): as small as an
//     aggregate gets, so the figures are the host's and the store's.
//   - command: commands/s through the host to 10,000 distinct units (the
//     real Unit aggregate: each command sets a label, appending one event)
//     out of 100,000 registered (the other 90,000 passivated), and the
//     process's resident memory after the window.

func init() {
	register(Scenario{
		Name:  "recover",
		About: "recover one entity (spawn, snapshot, tail, reply) from 1,000 events, without and with a snapshot",
		Run:   runRecover,
		Targets: []Target{
			{Name: "recover-1000-events-under-2ms", Measured: Selector{Subject: "logbook", Params: []Param{P("snapshot", 0)}}, Constant: 500, Factor: 1},
			{Name: "recover-from-snapshot-under-200us", Measured: Selector{Subject: "logbook", Params: []Param{P("snapshot", 1)}}, Constant: 5000, Factor: 1},
		},
	})
	register(Scenario{
		Name:  "command",
		About: "commands/s through the entity host to 10,000 of 100,000 entities; resident memory (rss_bytes, must stay under 1 GiB)",
		Run:   runCommand,
	})
}

const (
	recoverEvents    = 1000
	commandEntities  = 100_000
	commandActive    = 10_000
	rssBudget        = 1 << 30
	counterStateType = "google.protobuf.Int64Value"
)

var benchCounter = actors.Define("counter",
	func(string) *wrapperspb.Int64Value { return &wrapperspb.Int64Value{} },
	func(s *wrapperspb.Int64Value, cmd proto.Message, _ actors.Env) ([]proto.Message, error) {
		c, ok := cmd.(*wrapperspb.Int64Value)
		if !ok {
			return nil, fmt.Errorf("counter: unknown command %T", cmd)
		}
		if c.Value == 0 {
			return nil, nil
		}
		return []proto.Message{wrapperspb.Int64(c.Value)}, nil
	},
	func(s *wrapperspb.Int64Value, ev proto.Message) *wrapperspb.Int64Value {
		if e, ok := ev.(*wrapperspb.Int64Value); ok {
			s.Value += e.Value
		}
		return s
	},
	&wrapperspb.Int64Value{},
)

func newBenchHost(st events.Store, opts ...actors.Option) (*actors.Host, error) {
	quiet := actors.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	h, err := actors.NewHost(st, append([]actors.Option{quiet}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := h.Register(benchCounter); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func runRecover(ctx context.Context, cfg *Config) ([]Result, error) {
	var results []Result
	for _, snapshot := range []int64{0, 1} {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		params := []Param{P("stream_events", recoverEvents), P("snapshot", snapshot)}
		if !cfg.Wants("logbook") {
			continue
		}
		r, err := logbookRecover(ctx, cfg, snapshot == 1, params)
		if err != nil {
			r = failed("recover", "logbook", err, params...)
			cfg.Logf("%-40s FAILED: %s", r.Label(), oneLine(err.Error(), 200))
		} else {
			cfg.Logf("%-40s %12s recoveries/s  p50 %7s µs  p99 %7s µs", r.Label(), fmtInt(r.OpsPerS), fmtFloat(r.P50us), fmtFloat(r.P99us))
		}
		results = append(results, r)
	}
	return results, nil
}

// logbookRecover appends recoverEvents counter events one at a time (and a snapshot at the
// last one when withSnapshot), then passivates and reads the entity back
// again and again; each Read is one recovery.
func logbookRecover(ctx context.Context, cfg *Config, withSnapshot bool, params []Param) (res Result, err error) {
	st, done, err := openLogbook(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, done()) }()
	const stream = "counter-recover"
	var version uint64
	var want int64
	// One event per append, as an entity writes them (one frame and one
	// index run per event: the slow case for ReadStream).
	for version < recoverEvents {
		evs := make([]events.Event, 0, 1)
		for range 1 {
			want++
			ev, err := events.NewEvent(wrapperspb.Int64(want), events.Metadata{Principal: "bench"})
			if err != nil {
				return Result{}, err
			}
			evs = append(evs, ev)
		}
		ar, err := st.Append(ctx, stream, events.Exactly(version), evs...)
		if err != nil {
			return Result{}, fmt.Errorf("load: %w", err)
		}
		version = ar.LastVersion
	}
	total := want * (want + 1) / 2
	if withSnapshot {
		data, err := proto.Marshal(wrapperspb.Int64(total))
		if err != nil {
			return Result{}, err
		}
		if err := st.SaveSnapshot(ctx, events.Snapshot{Stream: stream, Version: version, Type: counterStateType, State: data, Time: time.Now()}); err != nil {
			return Result{}, fmt.Errorf("save snapshot: %w", err)
		}
	}
	host, err := newBenchHost(st, actors.WithIdleTimeout(0))
	if err != nil {
		return Result{}, err
	}
	defer host.Close()

	recoverOnce := func() (time.Duration, error) {
		if err := host.Passivate(ctx, stream); err != nil {
			return 0, err
		}
		start := time.Now()
		r, err := host.Read(ctx, stream)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if r.Version != version || r.State.(*wrapperspb.Int64Value).GetValue() != total {
			return 0, fmt.Errorf("recovered version %d value %v, want %d and %d", r.Version, r.State, version, total)
		}
		return d, nil
	}
	for t0 := time.Now(); time.Since(t0) < cfg.Warmup; {
		if _, err := recoverOnce(); err != nil {
			return Result{}, err
		}
	}
	var hist histogram
	var busy time.Duration
	var n int64
	for t0 := time.Now(); n == 0 || time.Since(t0) < cfg.Duration; n++ {
		d, err := recoverOnce()
		if err != nil {
			return Result{}, err
		}
		hist.Record(d)
		busy += d
	}
	// ops/s counts recoveries per second of recovering (the passivations
	// between them are not timed), so it is 1 / mean latency.
	return Result{
		Scenario:   "recover",
		Subject:    "logbook",
		Params:     params,
		Events:     n,
		Seconds:    busy.Seconds(),
		OpsPerS:    float64(n) / busy.Seconds(),
		HasLatency: true,
		P50us:      hist.Quantile(0.50),
		P99us:      hist.Quantile(0.99),
	}, nil
}

func runCommand(ctx context.Context, cfg *Config) ([]Result, error) {
	if !cfg.Wants("logbook") {
		return nil, nil
	}
	writerSets := []int{64, 256}
	if cfg.Quick {
		writerSets = []int{64}
	}
	results, err := logbookCommand(ctx, cfg, writerSets)
	if err != nil {
		for _, w := range writerSets {
			r := failed("command", "logbook", err, commandParams(w)...)
			cfg.Logf("%-40s FAILED: %s", r.Label(), oneLine(err.Error(), 200))
			results = append(results, r)
		}
	}
	return results, nil
}

func commandParams(writers int) []Param {
	return []Param{P("entities", commandEntities), P("active", commandActive), P("writers", int64(writers))}
}

// logbookCommand registers commandEntities entities through the host (one
// command each), passivates all but commandActive of them, then for each
// writer count runs a closed loop of commands to the active ones, each
// writer cycling through its own share of them. Memory is read after each
// window, after a forced GC that returns free memory to the OS.
func logbookCommand(ctx context.Context, cfg *Config, writerSets []int) (results []Result, err error) {
	st, done, err := openLogbook(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, done()) }()
	host, err := actors.NewHost(st, actors.WithIdleTimeout(0))
	if err != nil {
		return nil, err
	}
	defer host.Close()
	if err := host.Register(unit.Kind); err != nil {
		return nil, err
	}
	stream := func(i int) string { return "unit-bench" + strconv.Itoa(i) }
	md := events.Metadata{Principal: "bench"}

	start := time.Now()
	if err := edge.Parallel(ctx, 64, commandEntities, func(i int) error {
		_, err := host.Execute(ctx, stream(i), &logbookv1.RegisterUnit{Platform: "linux/arm64", Labels: map[string]string{"fleet": "bench"}}, md)
		return err
	}); err != nil {
		return nil, fmt.Errorf("register %d entities: %w", commandEntities, err)
	}
	cfg.Logf("command: registered %d entities in %.1fs (64 writers)", commandEntities, time.Since(start).Seconds())
	start = time.Now()
	if err := edge.Parallel(ctx, 64, commandEntities-commandActive, func(i int) error {
		return host.Passivate(ctx, stream(commandActive+i))
	}); err != nil {
		return nil, fmt.Errorf("passivate: %w", err)
	}
	cfg.Logf("command: passivated %d entities in %.1fs; %d live", commandEntities-commandActive, time.Since(start).Seconds(), host.Live())

	for _, writers := range writerSets {
		stats, err := RunLoad(ctx, Load{
			Writers: writers,
			PerCall: 1,
			Warmup:  cfg.Warmup,
			Measure: cfg.Duration,
			NewOp: func(w int) (Op, error) {
				next, n := w, 0
				return func(ctx context.Context) error {
					// Each command changes a label, so each appends an event.
					n++
					cmd := &logbookv1.SetUnitLabels{Labels: map[string]string{"round": strconv.Itoa(n)}}
					_, err := host.Execute(ctx, stream(next), cmd, md)
					next += writers
					if next >= commandActive {
						next = w
					}
					return err
				}, nil
			},
		})
		if err != nil {
			return results, err
		}
		if live := host.Live(); live != commandActive {
			return results, fmt.Errorf("%d entities live after the window, want %d", live, commandActive)
		}
		rss, heap := residentMemory()
		r := stats.Result("command", "logbook", append(commandParams(writers), P("rss_bytes", rss), P("heap_bytes", heap))...)
		status := "under"
		if rss >= rssBudget {
			status = "OVER"
		}
		cfg.Logf("%-40s %12s commands/s  p50 %7s µs  p99 %7s µs  rss %d MiB (%s the 1 GiB budget)",
			fmt.Sprintf("logbook writers=%d", writers), fmtInt(r.OpsPerS), fmtFloat(r.P50us), fmtFloat(r.P99us), rss>>20, status)
		results = append(results, r)
	}
	return results, nil
}

// residentMemory returns the process's resident set (VmRSS; the Go
// runtime's Sys off Linux) and live heap after a GC that returns free
// memory to the OS.
func residentMemory() (rss, heap int64) {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = int64(ms.HeapAlloc)
	if rss = vmRSS("self"); rss == 0 {
		rss = int64(ms.Sys)
	}
	return rss, heap
}

// vmRSS returns the resident set of process pid ("self" for this one)
// from /proc, or 0 where that is not readable.
func vmRSS(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "123456 kB"
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
