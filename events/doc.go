// Package events is the contract of Logbook's event log: the append-only,
// hash-chained record that every actor is rebuilt from.
//
// A Store holds streams named "<category>-<id>" (unit-ship1,
// channel-stable, process-ship1.syslogforwarding.nginx). Append is atomic per
// call, checks an Expect against the stream's current version, is idempotent
// on event ids and returns only once the events are durable. Every event gets
// a dense 1-based global position and a hash chaining it to its predecessor,
// so a (position, hash) pair names one state of the whole fleet and Verify can
// prove the history was not rewritten.
//
// Reads are iterators:
//
//	res, err := store.Append(ctx, "unit-ship1", events.NoStream, ev)
//	if errors.Is(err, events.ErrWrongExpectedVersion) { /* reload and decide again */ }
//
//	for ev, err := range store.ReadStream(ctx, "unit-ship1", 1) {
//		if err != nil { return err }
//		state = evolve(state, ev)
//	}
//
//	for ev, err := range store.Subscribe(ctx, checkpoint+1, events.Filter{Categories: []string{"unit"}}) {
//		// catch-up, then live, until ctx is done
//	}
//
// Back-ends live in sub-packages (events/embedded, ...) and all pass the
// conformance suite in events/storetest.
package events
