package embedded_test

import (
	"context"
	"testing"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/events/storetest"
)

func openStore(tb testing.TB, dir string, opts ...embedded.Option) events.Store {
	tb.Helper()
	s, err := embedded.Open(context.Background(), dir, opts...)
	if err != nil {
		tb.Fatalf("embedded.Open(%s): %v", dir, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Run("Disk", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) events.Store { return openStore(t, t.TempDir()) })
	})
	t.Run("InMemory", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) events.Store { return openStore(t, "mem", embedded.InMemory()) })
	})
	t.Run("DiskSmallSegments", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) events.Store {
			return openStore(t, t.TempDir(), embedded.WithSegmentSize(64<<10))
		})
	})
}

func TestConformanceReopen(t *testing.T) {
	t.Run("Disk", func(t *testing.T) {
		t.Parallel()
		storetest.RunReopen(t, func(t *testing.T) func() (events.Store, error) {
			dir := t.TempDir()
			return func() (events.Store, error) { return embedded.Open(context.Background(), dir) }
		})
	})
	t.Run("DiskSmallSegments", func(t *testing.T) {
		t.Parallel()
		storetest.RunReopen(t, func(t *testing.T) func() (events.Store, error) {
			dir := t.TempDir()
			return func() (events.Store, error) {
				return embedded.Open(context.Background(), dir, embedded.WithSegmentSize(4096))
			}
		})
	})
}

func BenchmarkStore(b *testing.B) {
	b.Run("Disk", func(b *testing.B) {
		storetest.Bench(b, func(b *testing.B) events.Store { return openStore(b, b.TempDir()) })
	})
	b.Run("InMemory", func(b *testing.B) {
		storetest.Bench(b, func(b *testing.B) events.Store { return openStore(b, "mem", embedded.InMemory()) })
	})
}
