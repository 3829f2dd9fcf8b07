package projections_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/sinktest"
	"github.com/logbook-fleet/logbook/projections/sqlite"
)

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"fleet": true, "unit_status": true, "a1": true, "things_x": true,
		"": false, "Fleet": false, "fleet-x": false, "_a": false, "a__b": false, "a_": false,
		"fleet_v2": false, "v1": false, "logbook_x": false, strings.Repeat("a", 33): false,
		"x;drop": false, "fleet_v2x": true,
	} {
		err := projections.ValidateName(name)
		if (err == nil) != ok || (err != nil && !errors.Is(err, projections.ErrInvalidName)) {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestTableNames(t *testing.T) {
	if got := projections.TableName("fleet", 2, "units"); got != "fleet_v2_units" {
		t.Fatal(got)
	}
	for table, want := range map[string]int{"fleet_v2_units": 2, "fleet_v10_a_b": 10, "fleet_v2": 0, "fleet_x_v1_a": 0, "fleet_v02_a": 0, "fleetv1_a": 0} {
		v, ok := projections.VersionOfTable("fleet", table)
		if (want == 0) == ok || v != want {
			t.Errorf("VersionOfTable(fleet, %q) = %d, %v; want %d", table, v, ok, want)
		}
	}
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                               "SELECT 1",
		"a = ? AND b = ?":                        "a = $1 AND b = $2",
		"a = '?' AND b = ? -- c = ?\n AND d = ?": "a = '?' AND b = $1 -- c = ?\n AND d = $2",
		`"we?ird" = ? AND e = 'it''s ?' AND f=?`: `"we?ird" = $1 AND e = 'it''s ?' AND f=$2`,
	} {
		if got := projections.Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStartRejectsBadProjections(t *testing.T) {
	ctx := context.Background()
	st, sink := memLog(t)
	good := sinktest.Counter("counts", 1, sinktest.CounterOptions{})
	bad := good
	bad.Name, bad.Version, bad.Handler = "Bad", 0, nil
	if _, err := projections.Start(ctx, st, sink, []projections.Projection{good, good}); err == nil {
		t.Error("duplicate names accepted")
	}
	if _, err := projections.Start(ctx, st, sink, []projections.Projection{bad}); !errors.Is(err, projections.ErrInvalidName) {
		t.Errorf("bad projection: %v", err)
	}
	if _, err := projections.Start(ctx, st, sink, nil, projections.WithMaxBatch(0), projections.WithBackoff(time.Second, time.Millisecond)); err == nil {
		t.Error("bad options accepted")
	}
}

func TestCollector(t *testing.T) {
	ctx := context.Background()
	st, sink := memLog(t)
	sinktest.MustAppendCounters(t, ctx, st, 3, 50, 1)
	r, err := projections.Start(ctx, st, sink, []projections.Projection{sinktest.Counter("counts", 1, sinktest.CounterOptions{})},
		projections.WithLogger(sinktest.QuietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.WaitReady(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(projections.NewCollector(r))
	want := `
# HELP logbook_projection_checkpoint Position of the last event the projection committed.
# TYPE logbook_projection_checkpoint gauge
logbook_projection_checkpoint{projection="counts"} 50
# HELP logbook_projection_events_total Events handled by the projection since start.
# TYPE logbook_projection_events_total counter
logbook_projection_events_total{projection="counts"} 50
# HELP logbook_projection_lag Head minus checkpoint, in events.
# TYPE logbook_projection_lag gauge
logbook_projection_lag{projection="counts"} 0
# HELP logbook_projection_ready 1 when the projection can serve reads, else 0.
# TYPE logbook_projection_ready gauge
logbook_projection_ready{projection="counts"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "logbook_projection_checkpoint", "logbook_projection_events_total",
		"logbook_projection_lag", "logbook_projection_ready"); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := r.WaitReady(ctx, "counts"); err != nil {
		t.Fatalf("WaitReady after ready and Close: %v", err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
}

func TestGenerations(t *testing.T) {
	for gen, want := range map[int]int{1: 1, 999: 999, 1001: 1, 2002: 2, 12345: 345} {
		if got := projections.VersionOfGeneration(gen); got != want {
			t.Errorf("VersionOfGeneration(%d) = %d, want %d", gen, got, want)
		}
	}
	ctx := context.Background()
	st, sink := memLog(t)
	p := sinktest.Counter("counts", projections.MaxVersion+1, sinktest.CounterOptions{})
	if _, err := projections.Start(ctx, st, sink, []projections.Projection{p}); err == nil {
		t.Fatalf("Start accepted version %d", p.Version)
	}
}

func TestWaitPosition(t *testing.T) {
	ctx := t.Context()
	st, sink := memLog(t)
	sinktest.MustAppendCounters(t, ctx, st, 3, 10, 1)
	r, err := projections.Start(ctx, st, sink, []projections.Projection{sinktest.Counter("counts", 1, sinktest.CounterOptions{})},
		projections.WithLogger(sinktest.QuietLogger()), projections.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wait := func(ctx context.Context, position uint64) <-chan error {
		done := make(chan error, 1)
		go func() { done <- r.WaitPosition(ctx, "counts", position) }()
		return done
	}

	// Already reached, at and before the checkpoint.
	if err := r.WaitReady(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	for _, pos := range []uint64{0, 5, 10} {
		if err := r.WaitPosition(ctx, "counts", pos); err != nil {
			t.Errorf("WaitPosition(%d) at checkpoint 10 = %v", pos, err)
		}
	}

	// Reached later: a selected event, then one the filter skips (the
	// checkpoint moves over it at a poll).
	selected, other := wait(ctx, 12), wait(ctx, 13)
	sinktest.MustAppendCounters(t, ctx, st, 3, 2, 100)
	if err := <-selected; err != nil {
		t.Fatalf("WaitPosition(12) = %v", err)
	}
	if s, _ := r.Status("counts"); s.Checkpoint < 12 {
		t.Fatalf("WaitPosition(12) returned at checkpoint %d", s.Checkpoint)
	}
	if _, err := st.Append(ctx, "other-a", events.Any, sinktest.CounterEvent(0)); err != nil {
		t.Fatal(err)
	}
	if err := <-other; err != nil {
		t.Fatalf("WaitPosition(13), an event the filter skips = %v", err)
	}
	if s, _ := r.Status("counts"); s.Checkpoint < 13 {
		t.Fatalf("WaitPosition(13) returned at checkpoint %d", s.Checkpoint)
	}

	// ctx ends first.
	cctx, cancel := context.WithCancel(ctx)
	canceled := wait(cctx, 1000)
	cancel()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Errorf("WaitPosition with ctx canceled = %v, want context.Canceled", err)
	}

	if err := r.WaitPosition(ctx, "nope", 1); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Errorf("WaitPosition(nope) = %v, want ErrUnknownProjection", err)
	}

	// The runner closes first; a position it had reached still answers nil.
	closed := wait(ctx, 1000)
	r.Close()
	if err := <-closed; !errors.Is(err, projections.ErrClosed) {
		t.Errorf("WaitPosition when the runner closes = %v, want ErrClosed", err)
	}
	if err := r.WaitPosition(ctx, "counts", 13); err != nil {
		t.Errorf("WaitPosition(13) after Close = %v", err)
	}
}

func TestWaitPositionStopped(t *testing.T) {
	ctx := t.Context()
	st, sink := memLog(t)
	sinktest.MustAppendCounters(t, ctx, st, 3, 10, 1)
	bad := sinktest.CounterEvent(0)
	bad.Data = []byte{0xff, 0xff, 0xff} // not a valid Int64Value: poison
	if _, err := st.Append(ctx, "counter-s0", events.Any, bad); err != nil {
		t.Fatal(err)
	}
	r, err := projections.Start(ctx, st, sink, []projections.Projection{sinktest.Counter("counts", 1, sinktest.CounterOptions{})},
		projections.WithLogger(sinktest.QuietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ee *projections.EventError
	if err := r.WaitPosition(ctx, "counts", 11); !errors.Is(err, projections.ErrStopped) || !errors.As(err, &ee) || ee.Position != 11 {
		t.Errorf("WaitPosition past a poison event = %v, want ErrStopped and the cause at position 11", err)
	}
	if err := r.WaitPosition(ctx, "counts", 10); err != nil {
		t.Errorf("WaitPosition before the poison event = %v", err)
	}
}

// memLog opens an in-memory log and an in-memory SQLite sink, closed when
// t ends.
func memLog(t *testing.T) (*embedded.Store, *sqlite.Sink) {
	t.Helper()
	st, err := embedded.Open(t.Context(), "x", embedded.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sink, err := sqlite.Open(t.Context(), sqlite.Memory)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return st, sink
}
