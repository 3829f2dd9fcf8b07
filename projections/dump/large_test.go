package dump

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
)

// TestLargeDayInBoundedMemory dumps a day of 100k events (about 25 MB of
// NDJSON) to a file:// bucket and checks that the live heap during the scan
// stays far below the size of the day: lines are streamed, never collected.
func TestLargeDayInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large day: skipped with -short")
	}
	const (
		total   = 100_000
		perCall = 1000
	)
	ctx := t.Context()
	began := time.Now()
	// On disk, so the log itself is not in the heap.
	s, err := embedded.Open(ctx, t.TempDir(), embedded.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.NewChaCha8([32]byte{1})
	start := at(22, 0, 0, 0, 0)
	step := 24 * time.Hour / total
	batch := make([]events.Event, 0, perCall)
	for i := 0; i < total; i += perCall {
		stream := fmt.Sprintf("readings-u%d", (i/perCall)%7)
		if (i/perCall)%10 == 9 {
			stream = fmt.Sprintf("unit-u%d", i/perCall)
		}
		batch = batch[:0]
		for j := range perCall {
			data := make([]byte, 48) // random: gzip cannot shrink it much
			_, _ = rng.Read(data)
			batch = append(batch, events.Event{
				ID: events.NewID(), Type: "lada.v1.Reading", Data: data,
				Time: start.Add(time.Duration(i+j) * step),
			})
		}
		if _, err := s.Append(ctx, stream, events.Any, batch...); err != nil {
			t.Fatal(err)
		}
	}
	MustAppendRaw(t, s, "unit-end", at(23, 1, 0, 0, 0), "x.End", nil)

	b, err := blob.OpenBucket(ctx, fileURL(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// The decoder samples the live heap (after a GC) every 10k events.
	live := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := live()
	var peak uint64
	sample := func(e events.Event) ([]byte, error) {
		if e.Position%10_000 == 0 {
			peak = max(peak, live())
		}
		return rawDecoder(e)
	}
	d := MustDumper(t, s, b, WithDecoder(sample))
	dumpStart := time.Now()
	res, err := d.Run(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Readings.Count + res.Audit.Count; got != total || res.Audit.Count != total/10 {
		t.Fatalf("dumped %d readings + %d audit, want %d in all, %d audit", res.Readings.Count, res.Audit.Count, total, total/10)
	}
	size := res.Readings.Size + res.Audit.Size
	growth := int64(peak) - int64(base)
	t.Logf("day: %d MB uncompressed, %d MB compressed; live heap %d MB before, peak growth %d KB",
		size>>20, (res.Readings.CompressedSize+res.Audit.CompressedSize)>>20, base>>20, growth>>10)
	if growth > size/4 {
		t.Errorf("live heap grew by %d bytes during a dump of %d bytes: the day is being held in memory", growth, size)
	}
	t.Logf("appended in %s, dumped in %s", dumpStart.Sub(began).Round(time.Millisecond), time.Since(dumpStart).Round(time.Millisecond))
	if err := d.Verify(ctx, start); err != nil {
		t.Fatal(err)
	}
}
