package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/sinktest"
	"github.com/logbook-fleet/logbook/projections/sqlite"
)

func newStore(t testing.TB) events.Store {
	st, err := embedded.Open(context.Background(), t.TempDir(), embedded.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Config{
		NewSink: func(t testing.TB) projections.Sink {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "read.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		NewStore: newStore,
	})
}

func TestConformanceInMemory(t *testing.T) {
	sinktest.Run(t, sinktest.Config{
		NewSink: func(t testing.TB) projections.Sink {
			s, err := projections.OpenSink(context.Background(), "sqlite::memory:")
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		NewStore: newStore,
	})
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"sqlite://" + filepath.Join(dir, "a.db"), nil},
		{"sqlite:" + filepath.Join(dir, "b.db"), nil},
		{"sqlite::memory:", nil},
		{"sqlite://host/a.db", projections.ErrBadURL},
		{"sqlite://", projections.ErrBadURL},
		{"sqlite:///tmp/a.db?x=1", projections.ErrBadURL},
		{"nosuch:///x", projections.ErrUnknownScheme},
		{"/just/a/path", projections.ErrBadURL},
		{"%zz", projections.ErrBadURL},
	} {
		s, err := projections.OpenSink(ctx, tc.url)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (s != nil) {
			t.Errorf("OpenSink(%q) = %v, want %v", tc.url, err, tc.want)
		}
		if s != nil {
			s.Close()
		}
	}
}

// TestCrash kills a runner with SIGKILL in the middle of batches, again and
// again, and checks that nothing was lost or doubled.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: slow")
	}
	sinktest.RunCrash(t, sinktest.CrashConfig{
		SinkURL:   "sqlite://" + filepath.Join(t.TempDir(), "read.db"),
		ChildTest: "TestCrashChild",
		OpenStore: openStore,
	})
}

// TestCrashChild is the process TestCrash kills; it does nothing unless
// started by TestCrash.
func TestCrashChild(t *testing.T) { sinktest.CrashChild(t, openStore) }

func openStore(ctx context.Context, dir string) (events.Store, error) { return embedded.Open(ctx, dir) }
