// Package storetest is the conformance suite and the shared benchmarks that
// every events.Store back-end runs.
//
// A back-end wires it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) events.Store {
//			s, err := mystore.Open(t.Context(), t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
//	func TestConformanceReopen(t *testing.T) {
//		storetest.RunReopen(t, func(t *testing.T) func() (events.Store, error) {
//			dir := t.TempDir()
//			return func() (events.Store, error) { return mystore.Open(context.Background(), dir) }
//		})
//	}
//
//	func BenchmarkStore(b *testing.B) {
//		storetest.Bench(b, func(b *testing.B) events.Store { ... })
//	}
//
// Run covers Append (every Expect, racing writers, idempotent retries,
// duplicate ids, atomic batches, limits, stream names), global order and
// the hash chain, ReadStream and ReadAll (bounds, filters, ownership of
// Data, reads that append from their loop body), Subscribe (catch-up racing
// live appends, filters, stalled, cancelled and closed subscribers), Head,
// Verify, snapshots and the closed store. RunReopen covers what must
// survive Close and open. The exported MustX helpers, Collect, CheckChain
// and EventDiff serve a back-end's own tests.
//
// The suite opens a fresh store for every subtest and closes it itself; its
// subtests run in parallel. Every wait is bounded, so a store that deadlocks
// fails the suite instead of hanging it. Every test checks a guarantee of the
// events.Store contract; none is optional. RunFeatures takes a Features value
// for what legitimately differs between back-ends (the clock that stamps
// events).
package storetest
