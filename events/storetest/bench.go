package storetest

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/logbook-fleet/logbook/events"
)

// BenchPayload is the size of the data of every benchmark event, in bytes.
const BenchPayload = 256

// Bench runs the shared benchmarks against stores from open; each
// sub-benchmark opens its own store, which Bench closes. Every benchmark
// reports events/s; appends also report bytes of payload per second.
func Bench(b *testing.B, open func(b *testing.B) events.Store) {
	store := func(b *testing.B) events.Store {
		st := open(b)
		b.Cleanup(func() { closeStore(b, st) })
		return st
	}
	// Concurrent single-event appends; with many writers per CPU a store
	// that shares one sync between them (group commit) shows it.
	for _, perCPU := range []int{1, 32} {
		b.Run(fmt.Sprintf("AppendSingle/writers=%d", perCPU*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			st := store(b)
			var writer atomic.Int64
			b.SetBytes(BenchPayload)
			b.ReportAllocs()
			b.SetParallelism(perCPU)
			b.RunParallel(func(pb *testing.PB) {
				stream := fmt.Sprintf("bench-w%d", writer.Add(1))
				ev := benchEvents(1)
				for pb.Next() {
					ev[0].ID = events.NewID()
					if _, err := st.Append(b.Context(), stream, events.Any, ev...); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRate(b, b.N)
		})
	}
	b.Run("AppendBatch256", func(b *testing.B) {
		st := store(b)
		evs := benchEvents(256)
		b.SetBytes(256 * BenchPayload)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			for i := range evs {
				evs[i].ID = events.NewID()
			}
			if _, err := st.Append(b.Context(), fmt.Sprintf("bench-%d", n%16), events.Any, evs...); err != nil {
				b.Fatal(err)
			}
			n++
		}
		reportRate(b, n*256)
	})
	b.Run("ReadAll", func(b *testing.B) {
		const total = 20000
		st := store(b)
		fill(b, st, total, func(i int) string { return fmt.Sprintf("bench-%d", i/256%16) })
		b.SetBytes(total * BenchPayload)
		b.ReportAllocs()
		reads := 0
		for b.Loop() {
			n := 0
			for _, err := range st.ReadAll(b.Context(), 0, events.Filter{}) {
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != total {
				b.Fatalf("ReadAll yielded %d events, want %d", n, total)
			}
			reads++
		}
		reportRate(b, reads*total)
	})
	b.Run("ReadStream1000", func(b *testing.B) {
		const total, want = 10000, 1000
		st := store(b)
		fill(b, st, total, func(i int) string {
			if i/100%10 == 3 { // 10 runs of 100 between other streams' events
				return "bench-target"
			}
			return fmt.Sprintf("bench-%d", i/100%7)
		})
		b.SetBytes(want * BenchPayload)
		b.ReportAllocs()
		reads := 0
		for b.Loop() {
			n := 0
			for _, err := range st.ReadStream(b.Context(), "bench-target", 0) {
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != want {
				b.Fatalf("ReadStream yielded %d events, want %d", n, want)
			}
			reads++
		}
		reportRate(b, reads*want)
	})
}

func benchEvents(n int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		data := make([]byte, BenchPayload)
		for j := range data {
			data[j] = byte(i + j)
		}
		evs[i] = events.Event{ID: events.NewID(), Type: TestType, Data: data,
			Metadata: events.Metadata{CorrelationID: "bench", Principal: "storetest"}}
	}
	return evs
}

// fill appends n events, event i to stream streamOf(i), grouping runs of
// the same stream into appends of up to 256 events so setup stays quick.
func fill(b *testing.B, st events.Store, n int, streamOf func(i int) string) {
	b.Helper()
	for i := 0; i < n; {
		j := i + 1
		for j < n && j-i < 256 && streamOf(j) == streamOf(i) {
			j++
		}
		if _, err := st.Append(b.Context(), streamOf(i), events.Any, benchEvents(j-i)...); err != nil {
			b.Fatal(err)
		}
		i = j
	}
}

func reportRate(b *testing.B, n int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)/s, "events/s")
	}
}
