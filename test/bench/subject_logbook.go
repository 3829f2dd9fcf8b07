package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
)

// The logbook subject: the embedded store with its default options, one
// fresh directory per measurement.

const (
	payloadBytes = 256
	benchType    = "bench.v1.Payload"
)

// payload returns n incompressible bytes shared by every event of a run;
// stores never modify the Data they are given.
func payload(n int) []byte {
	b := make([]byte, n)
	var x uint64 = 0x9e3779b97f4a7c15
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// openLogbook opens a store in a fresh directory; done closes it and removes
// the directory.
func openLogbook(ctx context.Context, cfg *Config) (st *embedded.Store, done func() error, err error) {
	dir, err := cfg.TempDir("logbook")
	if err != nil {
		return nil, nil, err
	}
	st, err = embedded.Open(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("open embedded store: %w", err)
	}
	return st, func() error {
		err := st.Close()
		return errors.Join(err, os.RemoveAll(dir))
	}, nil
}

// logbookAppend measures writers goroutines, each appending batch events per
// call to its own stream "bench-w<n>" with the exact expected version.
func logbookAppend(ctx context.Context, cfg *Config, writers, batch int) (LoadStats, error) {
	st, done, err := openLogbook(ctx, cfg)
	if err != nil {
		return LoadStats{}, err
	}
	data := payload(payloadBytes)
	stats, err := RunLoad(ctx, Load{
		Writers: writers,
		PerCall: batch,
		Warmup:  cfg.Warmup,
		Measure: cfg.Duration,
		NewOp: func(w int) (Op, error) {
			stream := fmt.Sprintf("bench-w%d", w)
			var version uint64
			evs := make([]events.Event, batch)
			return func(ctx context.Context) error {
				for i := range evs {
					evs[i] = events.Event{ID: events.NewID(), Type: benchType, Data: data}
				}
				res, err := st.Append(ctx, stream, events.Exactly(version), evs...)
				if err != nil {
					return fmt.Errorf("append to %s at version %d: %w", stream, version, err)
				}
				if res.LastVersion != version+uint64(batch) {
					return fmt.Errorf("append to %s at version %d: got last version %d, want %d", stream, version, res.LastVersion, version+uint64(batch))
				}
				version = res.LastVersion
				return nil
			}, nil
		},
	})
	return stats, errors.Join(err, done())
}

// logbookLoad appends n events to st in batches of batch events from a few
// concurrent writers, each to its own streams, and returns the events/s.
func logbookLoad(ctx context.Context, st events.Store, n, batch, writers int) (float64, error) {
	data := payload(payloadBytes)
	start := time.Now()
	per := (n + writers - 1) / writers
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		todo := min(per, n-w*per)
		if todo <= 0 {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := make([]events.Event, batch)
			stream := fmt.Sprintf("bench-r%d", w)
			var version uint64
			for todo > 0 {
				k := min(batch, todo)
				for i := range k {
					evs[i] = events.Event{ID: events.NewID(), Type: benchType, Data: data}
				}
				res, err := st.Append(ctx, stream, events.Exactly(version), evs[:k]...)
				if err != nil {
					errs[w] = fmt.Errorf("load %s at version %d: %w", stream, version, err)
					return
				}
				version = res.LastVersion
				todo -= k
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// logbookReadAll reads every event from position 0, touching each payload,
// and returns how many it read.
func logbookReadAll(ctx context.Context, st events.Store) (int64, int64, error) {
	seq := st.ReadAll(ctx, 0, events.Filter{})
	if seq == nil {
		return 0, 0, errors.New("ReadAll returned a nil iterator")
	}
	var n, bytes int64
	var last uint64
	for ev, err := range seq {
		if err != nil {
			return n, bytes, fmt.Errorf("ReadAll after %d events: %w", n, err)
		}
		if ev.Position <= last {
			return n, bytes, fmt.Errorf("ReadAll: position %d after %d", ev.Position, last)
		}
		last = ev.Position
		n++
		bytes += int64(len(ev.Data))
	}
	return n, bytes, nil
}
