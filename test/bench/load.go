package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Op performs one call (one append, one publish, one sync...) for a writer.
// Each writer goroutine owns its Op, so an Op may keep state (the stream's
// expected version) without locking.
type Op func(ctx context.Context) error

// Load describes a closed-loop load: Writers goroutines call their Op back
// to back, each call carrying PerCall units.
type Load struct {
	Writers int
	PerCall int
	Warmup  time.Duration
	Measure time.Duration
	// NewOp builds writer w's Op before any clock starts.
	NewOp func(w int) (Op, error)
}

// LoadStats is what a Load measured. Calls completing inside the measured
// window are counted (with their whole latency, even if they started
// during the warm-up); Seconds is the window's length.
type LoadStats struct {
	Calls   int64
	Units   int64
	Seconds float64
	Latency histogram
	// CPU is the CPU time the bench process used in the window, when
	// HasCPU: it tells a case bound by its cores from one bound by waits.
	CPU    time.Duration
	HasCPU bool
}

// stopGrace is how long stopped writers get to finish their last call
// before their context is cancelled.
const stopGrace = 30 * time.Second

type writerStats struct {
	calls int64
	hist  histogram
}

// RunLoad runs l and returns its stats, or the first error a writer hit.
func RunLoad(ctx context.Context, l Load) (LoadStats, error) {
	ops := make([]Op, l.Writers)
	for w := range ops {
		op, err := l.NewOp(w)
		if err != nil {
			return LoadStats{}, fmt.Errorf("writer %d: %w", w, err)
		}
		ops[w] = op
	}

	const (
		warming = iota
		measuring
		stopped
	)
	var phase atomic.Int32
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stats := make([]*writerStats, l.Writers)
	errc := make(chan error, l.Writers)
	var wg sync.WaitGroup
	for w := range ops {
		stats[w] = new(writerStats)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, op := stats[w], ops[w]
			for phase.Load() != stopped {
				start := time.Now()
				if err := op(wctx); err != nil {
					if phase.Load() != stopped || wctx.Err() == nil {
						errc <- fmt.Errorf("writer %d: %w", w, err)
					}
					return
				}
				if phase.Load() == measuring {
					st.hist.Record(time.Since(start))
					st.calls++
				}
			}
		}()
	}
	stop := func() {
		phase.Store(stopped)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopGrace):
			cancel()
			<-done
		}
	}
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	if err := wait(l.Warmup); err != nil {
		stop()
		return LoadStats{}, err
	}
	phase.Store(measuring)
	t0 := time.Now()
	cpu0, cpuOK := processCPU()
	err := wait(l.Measure)
	phase.Store(stopped)
	elapsed := time.Since(t0)
	cpu1, _ := processCPU()
	stop()
	if err != nil {
		return LoadStats{}, err
	}
	select {
	case err := <-errc: // a call failed after the window closed
		return LoadStats{}, err
	default:
	}

	out := LoadStats{Seconds: elapsed.Seconds(), CPU: cpu1 - cpu0, HasCPU: cpuOK}
	for _, st := range stats {
		out.Calls += st.calls
		out.Latency.Merge(&st.hist)
	}
	out.Units = out.Calls * int64(l.PerCall)
	if out.Calls == 0 {
		return out, errors.New("no call completed in the measured window")
	}
	return out, nil
}

// Result turns stats into a Result.
func (s *LoadStats) Result(scenario, subject string, params ...Param) Result {
	return Result{
		Scenario:   scenario,
		Subject:    subject,
		Params:     params,
		Events:     s.Units,
		Seconds:    s.Seconds,
		OpsPerS:    float64(s.Units) / s.Seconds,
		HasLatency: true,
		P50us:      s.Latency.Quantile(0.50),
		P99us:      s.Latency.Quantile(0.99),
		CPUSeconds: s.CPU.Seconds(),
		HasCPU:     s.HasCPU,
	}
}

// failed is the Result of a measurement that could not complete.
func failed(scenario, subject string, err error, params ...Param) Result {
	return Result{Scenario: scenario, Subject: subject, Params: params, Err: err.Error()}
}
