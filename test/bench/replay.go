package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The replay scenario: read every event from position 0, decoded, after
// loading N events; the JetStream peer reads the same N messages with an
// ordered consumer.

func init() {
	register(Scenario{
		Name:  "replay",
		About: "read every event from position 0 (ReadAll, decoded) after loading N 256 B events",
		Run:   runReplay,
		Targets: []Target{
			{Name: "logbook-replay-vs-2M", Measured: Selector{Subject: "logbook"}, Constant: 2_000_000, Factor: 1},
		},
	})
}

func replayEvents(cfg *Config) int {
	switch {
	case cfg.ReplayEvents > 0:
		return cfg.ReplayEvents
	case cfg.Quick:
		return 300_000
	}
	return 1_000_000
}

func runReplay(ctx context.Context, cfg *Config) ([]Result, error) {
	n := replayEvents(cfg)
	params := []Param{P("payload_bytes", payloadBytes), P("stream_events", int64(n))}
	subjects := []struct {
		name string
		run  func(context.Context, *Config, int) (Result, error)
	}{{"logbook", logbookReplay}, {"jetstream", jetstreamReplay}}
	var results []Result
	for _, s := range subjects {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		if !cfg.Wants(s.name) {
			continue
		}
		r, err := s.run(ctx, cfg, n)
		if err != nil {
			r = failed("replay", s.name, err, params...)
			cfg.Logf("%-40s FAILED: %s", r.Label(), oneLine(err.Error(), 200))
		} else {
			cfg.Logf("%-40s %12s events/s", r.Label(), fmtInt(r.OpsPerS))
		}
		results = append(results, r)
	}
	return results, nil
}

// logbookReplay loads n events in batches of 1,000 from 4 writers, then
// reads the whole log with ReadAll, pass after pass until cfg.Duration has
// elapsed (at least one pass).
func logbookReplay(ctx context.Context, cfg *Config, n int) (res Result, err error) {
	st, done, err := openLogbook(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, done()) }()
	rate, err := logbookLoad(ctx, st, n, 1000, 4)
	if err != nil {
		return Result{}, err
	}
	cfg.Logf("logbook: loaded %d events at %s/s (batches of 1000, 4 writers)", n, fmtInt(rate))

	var total int64
	passes := 0
	start := time.Now()
	for passes == 0 || time.Since(start) < cfg.Duration {
		got, _, err := logbookReadAll(ctx, st)
		total += got
		if err != nil {
			return Result{}, fmt.Errorf("pass %d: %w", passes+1, err)
		}
		if got != int64(n) {
			return Result{}, fmt.Errorf("pass %d: ReadAll yielded %d events, want %d", passes+1, got, n)
		}
		passes++
	}
	secs := time.Since(start).Seconds()
	return Result{
		Scenario: "replay",
		Subject:  "logbook",
		Params:   []Param{P("payload_bytes", payloadBytes), P("stream_events", int64(n)), P("passes", int64(passes))},
		Events:   total,
		Seconds:  secs,
		OpsPerS:  float64(total) / secs,
	}, nil
}
