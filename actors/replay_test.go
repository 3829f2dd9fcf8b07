package actors_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/events"
)

func TestReplayFoldsUpToThePoint(t *testing.T) {
	st := mustStore(t)
	host := mustHost(t, st, nil, actors.WithSnapshotEvery(2))
	const stream = "counter-replay"
	var positions []uint64
	for _, n := range []int64{5, 3, 10, 2} {
		res := mustExecute(t, host, stream, add(n))
		positions = append(positions, res.Appended.LastPosition)
	}
	ctx := context.Background()
	tests := []struct {
		name        string
		keep        func(events.Event) bool
		want        int64
		lastVersion uint64
		nextVersion uint64
	}{
		{"everything", nil, 20, 4, 0},
		{"up to the second event", func(ev events.Event) bool { return ev.Position <= positions[1] }, 8, 2, 3},
		{"nothing", func(events.Event) bool { return false }, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := host.Replay(ctx, stream, tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.State.(*wrapperspb.Int64Value).GetValue(); got != tt.want {
				t.Errorf("state = %d, want %d", got, tt.want)
			}
			if r.Last.Version != tt.lastVersion || r.Next.Version != tt.nextVersion || r.Stream != stream {
				t.Errorf("last version %d, next %d, stream %q; want %d, %d", r.Last.Version, r.Next.Version, r.Stream, tt.lastVersion, tt.nextVersion)
			}
		})
	}
}

func TestReplayErrors(t *testing.T) {
	st := mustStore(t)
	host := mustHost(t, st, nil)
	ctx := context.Background()
	if got := host.Categories(); !slices.Equal(got, []string{"counter"}) {
		t.Fatalf("Categories = %v", got)
	}
	for _, tt := range []struct {
		stream string
		want   error
	}{
		{"counter-none", events.ErrStreamNotFound},
		{"gauge-a", actors.ErrUnknownCategory},
		{"no dash", events.ErrInvalidStreamName},
	} {
		if _, err := host.Replay(ctx, tt.stream, nil); !errors.Is(err, tt.want) {
			t.Errorf("Replay(%q) = %v, want %v", tt.stream, err, tt.want)
		}
	}
	host.Close()
	if _, err := host.Replay(ctx, "counter-a", nil); !errors.Is(err, actors.ErrClosed) {
		t.Errorf("Replay after Close = %v, want ErrClosed", err)
	}
}
