package embedded

import (
	"context"
	"testing"

	"github.com/logbook-fleet/logbook/events"
)

func TestStatsCountDurableAppends(t *testing.T) {
	s := mustOpen(t, "mem", InMemory())
	defer s.Close()
	ctx := context.Background()
	batch := newEvents(3, "b")
	if _, err := s.Append(ctx, "unit-a", events.NoStream, batch...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "unit-a", events.Exactly(3), newEvents(1, "c")...); err != nil {
		t.Fatal(err)
	}
	// An idempotent repeat and a refused append write nothing.
	if _, err := s.Append(ctx, "unit-a", events.NoStream, batch...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "unit-a", events.NoStream, newEvents(1, "d")...); err == nil {
		t.Fatal("append to an existing stream with NoStream succeeded")
	}
	st := s.Stats()
	if st.Appends != 2 || st.Events != 4 {
		t.Fatalf("Stats = %+v, want 2 appends of 4 events", st)
	}
	if st.Syncs == 0 || st.Writes == 0 || st.Syncs > 4 || st.Writes > 4 {
		t.Fatalf("Stats = %+v, want between 1 and 4 writes and syncs", st)
	}
}
