package embedded

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
)

// AppendBatch decides its appends in order, each seeing the ones before
// it; a refused or invalid append fails alone; the whole batch shares one
// sync; and two stores given the same batches hold the same positions and
// hashes (what raft replicas rely on).
func TestAppendBatch(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	stamp := func(evs []events.Event) []events.Event {
		for i := range evs {
			evs[i].Time = at.Add(time.Duration(i) * time.Millisecond)
		}
		return evs
	}
	first := stamp(newEvents(2, "a"))
	batches := [][]BatchAppend{
		{
			{Stream: "unit-a", Expect: events.NoStream, Events: first},
			{Stream: "unit-a", Expect: events.Exactly(2), Events: stamp(newEvents(1, "a3"))},   // sees the first
			{Stream: "unit-a", Expect: events.Exactly(1), Events: stamp(newEvents(1, "late"))}, // refused: version 3 now
			{Stream: "bad stream", Expect: events.Any, Events: stamp(newEvents(1, "bad"))},     // invalid
			{Stream: "unit-b", Expect: events.Any, Events: stamp(newEvents(3, "b"))},
		},
		{
			{Stream: "unit-a", Expect: events.NoStream, Events: first}, // a retry: the original result
			{Stream: "unit-b", Expect: events.Exactly(3), Events: stamp(newEvents(1, "b4"))},
		},
	}
	stores := []*Store{mustOpen(t, t.TempDir()), mustOpen(t, t.TempDir())}
	var results [2][][]BatchResult
	for si, s := range stores {
		defer s.Close()
		for _, b := range batches {
			syncs := s.Stats().Syncs
			out, err := s.AppendBatch(ctx, cloneBatch(b)) // AppendBatch takes its events over
			if err != nil {
				t.Fatalf("store %d: AppendBatch: %v", si, err)
			}
			if len(out) != len(b) {
				t.Fatalf("store %d: %d results for %d appends", si, len(out), len(b))
			}
			if n := s.Stats().Syncs - syncs; n != 1 {
				t.Errorf("store %d: batch took %d syncs, want 1", si, n)
			}
			results[si] = append(results[si], out)
		}
	}
	r := results[0]
	check := func(name string, got BatchResult, first, last uint64) {
		t.Helper()
		if got.Err != nil || got.Result.FirstPosition != first || got.Result.LastPosition != last {
			t.Errorf("%s: %+v, %v; want positions %d..%d", name, got.Result, got.Err, first, last)
		}
	}
	check("first append", r[0][0], 1, 2)
	check("second append, after the first", r[0][1], 3, 3)
	var wrong *events.WrongExpectedVersionError
	if !errors.As(r[0][2].Err, &wrong) || wrong.Actual != 3 {
		t.Errorf("stale append: %v, want a wrong expected version with actual 3", r[0][2].Err)
	}
	if !errors.Is(r[0][3].Err, events.ErrInvalidStreamName) {
		t.Errorf("invalid stream: %v, want ErrInvalidStreamName", r[0][3].Err)
	}
	check("other stream", r[0][4], 4, 6)
	check("retry", r[1][0], 1, 2)
	check("after the retry", r[1][1], 7, 7)

	// The replicas agree event by event.
	for i := range results[0] {
		for j := range results[0][i] {
			a, b := results[0][i][j], results[1][i][j]
			if a.Result != b.Result || (a.Err == nil) != (b.Err == nil) {
				t.Errorf("batch %d append %d: %+v / %v on one store, %+v / %v on the other", i, j, a.Result, a.Err, b.Result, b.Err)
			}
		}
	}
	h0, _ := stores[0].Head(ctx)
	h1, _ := stores[1].Head(ctx)
	if h0 != h1 || h0.Position != 7 {
		t.Errorf("heads %+v and %+v, want the same at position 7", h0, h1)
	}
}

// cloneBatch copies appends' events, for one AppendBatch call to own.
func cloneBatch(appends []BatchAppend) []BatchAppend {
	out := make([]BatchAppend, len(appends))
	for i, a := range appends {
		out[i] = a
		out[i].Events = slices.Clone(a.Events)
	}
	return out
}
