package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
)

// Opener returns a new, empty store for one test. The suite closes the
// store itself (through t.Cleanup, bounded by a deadline), so an opener only
// cleans up what it made beside the store, such as a t.TempDir, which the
// testing package removes after the store is closed.
type Opener func(t *testing.T) events.Store

// Features declares what legitimately differs between back-ends.
// The zero value describes a store stamping events with the local wall clock.
type Features struct {
	// Now is the clock the store stamps events appended without a time
	// with; nil means time.Now.
	Now func() time.Time
	// ClockSkew is how far a stamp may lie outside the interval of the
	// Append call as measured by Now (a remote server's clock); 0 means 2s.
	ClockSkew time.Duration
}

// Timeout bounds every wait of the suite: an Append, a read, the arrival of
// an event at a subscriber, a Close. A store that takes longer fails.
const Timeout = 20 * time.Second

// TestType is the payload type of the events the suite appends.
const TestType = "logbook.storetest.Happened"

// Run runs the conformance suite against stores from open, assuming the
// zero Features.
func Run(t *testing.T, open Opener) { RunFeatures(t, open, Features{}) }

// RunFeatures runs the conformance suite against stores from open. Each
// subtest opens its own store and runs in parallel with the others.
func RunFeatures(t *testing.T, open Opener, f Features) {
	if f.Now == nil {
		f.Now = time.Now
	}
	if f.ClockSkew == 0 {
		f.ClockSkew = 2 * time.Second
	}
	s := &suite{open: open, f: f}
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"AppendExpect", s.testAppendExpect},
		{"AppendExpectRace", s.testAppendExpectRace},
		{"AppendExpectContention", s.testAppendExpectContention},
		{"AppendIdempotent", s.testAppendIdempotent},
		{"AppendIdempotentConcurrent", s.testAppendIdempotentConcurrent},
		{"AppendDuplicateID", s.testAppendDuplicateID},
		{"AppendAtomicBatch", s.testAppendAtomicBatch},
		{"AppendInvalidEvent", s.testAppendInvalidEvent},
		{"AppendLargest", s.testAppendLargest},
		{"StreamNames", s.testStreamNames},
		{"GlobalOrderSequential", s.testGlobalOrderSequential},
		{"GlobalOrderConcurrent", s.testGlobalOrderConcurrent},
		{"RoundTrip", s.testRoundTrip},
		{"TimeStamp", s.testTimeStamp},
		{"DataOwnership", s.testDataOwnership},
		{"ReadStream", s.testReadStream},
		{"ReadStreamNotFound", s.testReadStreamNotFound},
		{"ReadAll", s.testReadAll},
		{"ReadAllFilter", s.testReadAllFilter},
		{"ReadAppendWhileIterating", s.testReadAppendWhileIterating},
		{"ReadBreak", s.testReadBreak},
		{"ReadCancelled", s.testReadCancelled},
		{"SubscribeRace", s.testSubscribeRace},
		{"SubscribeFilter", s.testSubscribeFilter},
		{"SubscribeFuture", s.testSubscribeFuture},
		{"SubscribeStalled", s.testSubscribeStalled},
		{"SubscribeCancel", s.testSubscribeCancel},
		{"SubscribeClose", s.testSubscribeClose},
		{"SubscribeStalledClose", s.testSubscribeStalledClose},
		{"SubscribeBreak", s.testSubscribeBreak},
		{"Head", s.testHead},
		{"HashChain", s.testHashChain},
		{"Snapshot", s.testSnapshot},
		{"SnapshotInvalid", s.testSnapshotInvalid},
		{"Closed", s.testClosed},
		{"CloseConcurrent", s.testCloseConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

type suite struct {
	open Opener
	f    Features
}

// store opens a fresh store and closes it when t ends.
func (s *suite) store(t *testing.T) events.Store {
	t.Helper()
	st := s.open(t)
	if st == nil {
		t.Fatal("opener returned a nil store")
	}
	t.Cleanup(func() { closeStore(t, st) })
	return st
}

// closeStore closes st, failing t when Close fails or hangs. Closing an
// already closed store may return nil or ErrClosed.
func closeStore(tb testing.TB, st events.Store) {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- st.Close() }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, events.ErrClosed) {
			tb.Errorf("Close: %v", err)
		}
	case <-time.After(Timeout):
		tb.Errorf("Close did not return within %v", Timeout)
	}
}

// Context returns a context cancelled when tb ends or after Timeout.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(tb.Context(), Timeout)
	tb.Cleanup(cancel)
	return ctx
}

// NewEvents returns n events of type TestType with new ids, distinct data and
// metadata, and no time (the store stamps it).
func NewEvents(n int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		id := events.NewID()
		evs[i] = events.Event{
			ID:   id,
			Type: TestType,
			Data: fmt.Appendf(nil, "payload %d of %s", i, id),
			Metadata: events.Metadata{
				CorrelationID: "corr-" + id.String()[:8],
				CausationID:   "cause",
				Principal:     "storetest",
			},
		}
	}
	return evs
}

// NewEvent returns one event as NewEvents does.
func NewEvent() events.Event { return NewEvents(1)[0] }

// MustAppend appends evs and fails tb on error.
func MustAppend(tb testing.TB, st events.Store, stream string, expect events.Expect, evs ...events.Event) events.AppendResult {
	tb.Helper()
	res, err := st.Append(Context(tb), stream, expect, evs...)
	if err != nil {
		tb.Fatalf("Append(%s, %v, %d events): %v", stream, expect, len(evs), err)
	}
	n := uint64(len(evs))
	if res.LastVersion-res.FirstVersion+1 != n || res.LastPosition-res.FirstPosition+1 != n || res.FirstVersion == 0 || res.FirstPosition == 0 {
		tb.Fatalf("Append(%s, %d events) = %+v: versions and positions must be 1-based and span %d", stream, n, res, n)
	}
	return res
}

// Collect drains seq, returning the events before the first error and that
// error. A nil seq is reported as an error.
func Collect(seq iter.Seq2[events.Event, error]) ([]events.Event, error) {
	if seq == nil {
		return nil, errors.New("store returned a nil iterator")
	}
	var out []events.Event
	for ev, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// MustReadAll returns the events at positions >= from that match filter.
func MustReadAll(tb testing.TB, st events.Store, from uint64, filter events.Filter) []events.Event {
	tb.Helper()
	evs, err := Collect(st.ReadAll(Context(tb), from, filter))
	if err != nil {
		tb.Fatalf("ReadAll(%d, %+v): %v", from, filter, err)
	}
	return evs
}

// MustReadStream returns the events of stream with version >= from.
func MustReadStream(tb testing.TB, st events.Store, stream string, from uint64) []events.Event {
	tb.Helper()
	evs, err := Collect(st.ReadStream(Context(tb), stream, from))
	if err != nil {
		tb.Fatalf("ReadStream(%s, %d): %v", stream, from, err)
	}
	return evs
}

// MustHead returns the store's head.
func MustHead(tb testing.TB, st events.Store) events.Head {
	tb.Helper()
	h, err := st.Head(Context(tb))
	if err != nil {
		tb.Fatalf("Head: %v", err)
	}
	return h
}

// CheckChain checks that evs are the whole log: positions 1..len(evs) and
// each event's PrevHash and Hash chained as events.ChainHash defines.
func CheckChain(tb testing.TB, evs []events.Event) {
	tb.Helper()
	var prev events.Hash
	for i, ev := range evs {
		if ev.Position != uint64(i+1) {
			tb.Fatalf("event %d of the log has position %d, want %d (positions are dense and 1-based)", i, ev.Position, i+1)
		}
		if ev.PrevHash != prev {
			tb.Fatalf("position %d: PrevHash %s, want the hash of position %d: %s", ev.Position, ev.PrevHash, ev.Position-1, prev)
		}
		if want := events.ChainHash(ev.PrevHash, &ev); ev.Hash != want {
			tb.Fatalf("position %d: Hash %s, want ChainHash(PrevHash, event) = %s", ev.Position, ev.Hash, want)
		}
		prev = ev.Hash
	}
}

// EventDiff describes how got differs from want, field by field (times with
// time.Equal, data with bytes.Equal); "" when they are the same.
func EventDiff(want, got events.Event) string {
	var d []string
	add := func(field string, w, g any) { d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", want.ID, got.ID)
	}
	if got.Stream != want.Stream {
		add("Stream", want.Stream, got.Stream)
	}
	if got.Version != want.Version {
		add("Version", want.Version, got.Version)
	}
	if got.Position != want.Position {
		add("Position", want.Position, got.Position)
	}
	if !got.Time.Equal(want.Time) {
		add("Time", want.Time, got.Time)
	}
	if got.Type != want.Type {
		add("Type", want.Type, got.Type)
	}
	if !bytes.Equal(got.Data, want.Data) {
		add("Data", fmt.Sprintf("%q", want.Data), fmt.Sprintf("%q", got.Data))
	}
	if got.Metadata != want.Metadata {
		add("Metadata", want.Metadata, got.Metadata)
	}
	if got.PrevHash != want.PrevHash {
		add("PrevHash", want.PrevHash, got.PrevHash)
	}
	if got.Hash != want.Hash {
		add("Hash", want.Hash, got.Hash)
	}
	return strings.Join(d, "; ")
}

// checkSame fails t unless got and want are the same events in the same order.
func checkSame(t testing.TB, what string, want, got []events.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events (positions %v), want %d (positions %v)", what, len(got), positions(got), len(want), positions(want))
	}
	for i := range want {
		if d := EventDiff(want[i], got[i]); d != "" {
			t.Fatalf("%s: event %d: %s", what, i, d)
		}
	}
}

// checkAppended fails t unless got are the events in, stored at the place res
// names in stream.
func checkAppended(t testing.TB, stream string, res events.AppendResult, in, got []events.Event) {
	t.Helper()
	if len(got) != len(in) {
		t.Fatalf("got %d events, want the %d appended", len(got), len(in))
	}
	for i, ev := range got {
		w := in[i]
		w.Stream = stream
		w.Version = res.FirstVersion + uint64(i)
		w.Position = res.FirstPosition + uint64(i)
		w.PrevHash, w.Hash = ev.PrevHash, ev.Hash
		if w.Time.IsZero() {
			w.Time = ev.Time
		}
		if d := EventDiff(w, ev); d != "" {
			t.Fatalf("appended event %d: %s", i, d)
		}
	}
	if last := got[len(got)-1]; last.Hash != res.Hash {
		t.Fatalf("AppendResult.Hash %s, want the hash of the last appended event %s", res.Hash, last.Hash)
	}
}

func positions(evs []events.Event) string {
	if len(evs) == 0 {
		return "[]"
	}
	if len(evs) > 12 {
		return fmt.Sprintf("[%d %d %d ... %d %d %d]", evs[0].Position, evs[1].Position, evs[2].Position,
			evs[len(evs)-3].Position, evs[len(evs)-2].Position, evs[len(evs)-1].Position)
	}
	ps := make([]string, len(evs))
	for i, ev := range evs {
		ps[i] = fmt.Sprint(ev.Position)
	}
	return "[" + strings.Join(ps, " ") + "]"
}

// expectErr fails t unless err wraps one of targets.
func expectErr(t testing.TB, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Fatalf("%s: got error %v, want one wrapping %v", what, err, targets)
}

// checkEmpty fails t unless the store holds no events.
func checkEmpty(t testing.TB, st events.Store, why string) {
	t.Helper()
	if h := MustHead(t, st); h != (events.Head{}) {
		t.Fatalf("%s: head is %+v, want the empty log", why, h)
	}
	if evs := MustReadAll(t, st, 0, events.Filter{}); len(evs) != 0 {
		t.Fatalf("%s: ReadAll yields %d events, want none", why, len(evs))
	}
}

// clone deep-copies evs.
func clone(evs []events.Event) []events.Event {
	out := make([]events.Event, len(evs))
	for i, ev := range evs {
		ev.Data = bytes.Clone(ev.Data)
		out[i] = ev
	}
	return out
}
