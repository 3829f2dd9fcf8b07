package main

import "context"

// The append scenario: durable appends of 256-byte events with an exact
// expected version, against the fsync limit, JetStream and PostgreSQL
// measured in the same run.

func init() {
	logbook := func(writers, batch int64) Selector {
		return Selector{"logbook", []Param{P("writers", writers), P("batch", batch)}}
	}
	register(Scenario{
		Name:  "append",
		About: "W writers appending 256 B events, each to its own stream with expected version, durable before ack",
		Run:   runAppend,
		Targets: []Target{
			{Name: "logbook-64w-vs-fsync-limit", Measured: logbook(64, 1),
				Reference: Selector{"fsync-limit", []Param{P("records_per_sync", 64)}}, Factor: 0.5},
			{Name: "logbook-64w-vs-jetstream", Measured: logbook(64, 1),
				Reference: Selector{"jetstream", []Param{P("writers", 64)}}, Factor: 2},
			{Name: "logbook-64w-vs-jetstream-sync", Measured: logbook(64, 1),
				Reference: Selector{"jetstream-sync", []Param{P("writers", 64)}}, Factor: 10},
			{Name: "logbook-batch-vs-fsync-limit", Measured: logbook(16, 256),
				Reference: Selector{"fsync-limit", []Param{P("records_per_sync", 4096)}}, Factor: 0.5},
			{Name: "logbook-1w-vs-fsync-limit", Measured: logbook(1, 1),
				Reference: Selector{"fsync-limit", []Param{P("records_per_sync", 1)}}, Factor: 0.5},
		},
	})
}

func runAppend(ctx context.Context, cfg *Config) ([]Result, error) {
	fsync := func(n int) Case {
		return Case{"fsync-limit",
			[]Param{P("records_per_sync", int64(n)), P("payload_bytes", payloadBytes)},
			func(ctx context.Context) (LoadStats, error) { return fsyncLimit(ctx, cfg, n) }}
	}
	logbook := func(w, b int) Case {
		return Case{"logbook",
			[]Param{P("writers", int64(w)), P("batch", int64(b)), P("payload_bytes", payloadBytes)},
			func(ctx context.Context) (LoadStats, error) { return logbookAppend(ctx, cfg, w, b) }}
	}
	jetstream := func(w int, sync bool) Case {
		subject := "jetstream"
		if sync {
			subject = "jetstream-sync"
		}
		return Case{subject,
			[]Param{P("writers", int64(w)), P("batch", 1), P("payload_bytes", payloadBytes)},
			func(ctx context.Context) (LoadStats, error) { return jetstreamAppend(ctx, cfg, w, sync) }}
	}
	// Each target's two sides run back to back, so that a change in the
	// machine's load between measurements skews the ratios less.
	cases := []Case{
		fsync(1), logbook(1, 1),
		logbook(16, 1),
		fsync(64), logbook(64, 1), jetstream(64, false), jetstream(64, true),
		fsync(4096), logbook(16, 256),
	}
	if cfg.JetStreamAllWriters {
		cases = append(cases, jetstream(1, false), jetstream(16, false), jetstream(1, true), jetstream(16, true))
	}
	switch {
	case !cfg.Wants("postgres"):
	case cfg.Postgres == "":
		cfg.Logf("postgres: skipped (set LOGBOOK_BENCH_POSTGRES to a connection URL)")
	default:
		cases = append(cases, Case{"postgres",
			[]Param{P("writers", 64), P("batch", 1), P("payload_bytes", payloadBytes)},
			func(ctx context.Context) (LoadStats, error) { return postgresAppend(ctx, cfg, 64) }})
	}
	return RunCases(ctx, cfg, "append", cases)
}
