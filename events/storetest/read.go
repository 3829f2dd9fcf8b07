package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
)

func (s *suite) testRoundTrip(t *testing.T) {
	st := s.store(t)
	zone := time.FixedZone("ship time", -(3*3600 + 30*60))
	evs := NewEvents(6)
	evs[4].Time = events.MinTime
	evs[5].Time = events.MaxTime
	evs[0].Time = time.Date(2026, 11, 22, 8, 30, 15, 123456789, zone)
	evs[0].Data = []byte{0, 1, 2, 0xff, 0, '\n', 0x80}
	evs[1].Data = nil
	evs[1].Metadata = events.Metadata{}
	evs[2].Type = "logbook.v1.UnitRegistered"
	evs[2].Metadata = events.Metadata{CorrelationID: "ç-ø", CausationID: "\x00\xff", Principal: "operator@fleet"}
	evs[3].Time = time.Date(1970, 1, 1, 0, 0, 0, 1, time.UTC)
	res := MustAppend(t, st, "trip-x", events.NoStream, evs...)

	byStream := MustReadStream(t, st, "trip-x", 0)
	checkAppended(t, "trip-x", res, evs, byStream)
	for i, ev := range byStream {
		if ev.Time.Location() != time.UTC {
			t.Fatalf("event %d: time %v is in %v, want UTC", i, ev.Time, ev.Time.Location())
		}
	}
	checkSame(t, "ReadAll vs ReadStream", byStream, MustReadAll(t, st, 0, events.Filter{}))
	sub := subscribe(t, st, 0, events.Filter{})
	checkSame(t, "Subscribe vs ReadStream", byStream, sub.next(t, len(evs)))
	CheckChain(t, byStream)
}

func (s *suite) testTimeStamp(t *testing.T) {
	st := s.store(t)
	evs := NewEvents(3)
	exact := time.Date(2031, 2, 3, 4, 5, 6, 999999999, time.FixedZone("", 7*3600))
	evs[1].Time = exact
	before := s.f.Now()
	MustAppend(t, st, "time-x", events.NoStream, evs...)
	after := s.f.Now()
	got := MustReadStream(t, st, "time-x", 0)
	for i, ev := range got {
		if ev.Time.Location() != time.UTC {
			t.Fatalf("event %d: time %v is in %v, want UTC", i, ev.Time, ev.Time.Location())
		}
		if i == 1 {
			if !ev.Time.Equal(exact) {
				t.Fatalf("event with a time: stored %v, want %v to the nanosecond", ev.Time, exact)
			}
			continue
		}
		if ev.Time.Before(before.Add(-s.f.ClockSkew)) || ev.Time.After(after.Add(s.f.ClockSkew)) {
			t.Fatalf("event %d appended without a time: stamped %v, want between %v and %v", i, ev.Time, before, after)
		}
	}
}

// testDataOwnership: the store neither keeps the caller's buffers nor hands
// out its own.
func (s *suite) testDataOwnership(t *testing.T) {
	st := s.store(t)
	evs := NewEvents(2)
	want := clone(evs)
	res := MustAppend(t, st, "own-x", events.NoStream, evs...)
	for i := range evs {
		for j := range evs[i].Data {
			evs[i].Data[j] = 'X'
		}
	}
	got := MustReadStream(t, st, "own-x", 0)
	checkAppended(t, "own-x", res, want, got)
	for _, ev := range got {
		for j := range ev.Data {
			ev.Data[j] = 'Y'
		}
	}
	all := MustReadAll(t, st, 0, events.Filter{})
	checkAppended(t, "own-x", res, want, all)
	for _, ev := range all {
		for j := range ev.Data {
			ev.Data[j] = 'Z'
		}
	}
	checkAppended(t, "own-x", res, want, MustReadStream(t, st, "own-x", 1))
	if _, err := st.Verify(Context(t)); err != nil {
		t.Fatalf("Verify after callers scribbled on their buffers: %v", err)
	}
}

func (s *suite) testReadStream(t *testing.T) {
	st := s.store(t)
	for range 5 {
		MustAppend(t, st, "rs-a", events.Any, NewEvents(2)...)
		MustAppend(t, st, "rs-ab", events.Any, NewEvents(1)...)
	}
	all := MustReadStream(t, st, "rs-a", 0)
	if len(all) != 10 {
		t.Fatalf("ReadStream(rs-a, 0) yields %d events, want 10", len(all))
	}
	for i, ev := range all {
		if ev.Stream != "rs-a" || ev.Version != uint64(i+1) {
			t.Fatalf("event %d: stream %s version %d, want rs-a %d", i, ev.Stream, ev.Version, i+1)
		}
	}
	for _, tc := range []struct{ from, first, n uint64 }{
		{0, 1, 10}, {1, 1, 10}, {2, 2, 9}, {5, 5, 6}, {10, 10, 1}, {11, 0, 0}, {12, 0, 0}, {1 << 40, 0, 0}, {^uint64(0), 0, 0},
	} {
		got, err := Collect(st.ReadStream(Context(t), "rs-a", tc.from))
		if err != nil {
			t.Fatalf("ReadStream(rs-a, %d) of a 10-event stream: %v", tc.from, err)
		}
		var want []events.Event
		if tc.n > 0 {
			want = all[tc.first-1 : tc.first-1+tc.n]
		}
		checkSame(t, fmt.Sprintf("ReadStream(rs-a, %d)", tc.from), want, got)
	}
}

func (s *suite) testReadStreamNotFound(t *testing.T) {
	st := s.store(t)
	for _, from := range []uint64{0, 1, 5} {
		_, err := Collect(st.ReadStream(Context(t), "unit-none", from))
		expectErr(t, fmt.Sprintf("ReadStream(unit-none, %d) on an empty store", from), err, events.ErrStreamNotFound)
	}
	MustAppend(t, st, "unit-ab", events.Any, NewEvents(2)...)
	MustAppend(t, st, "units-a", events.Any, NewEvents(2)...)
	for _, name := range []string{"unit-a", "unit-abc", "unit-none"} {
		_, err := Collect(st.ReadStream(Context(t), name, 0))
		expectErr(t, "ReadStream("+name+")", err, events.ErrStreamNotFound)
	}
	_, err := Collect(st.ReadStream(Context(t), "not a stream", 0))
	expectErr(t, "ReadStream of an invalid name", err, events.ErrInvalidStreamName, events.ErrStreamNotFound)
}

func (s *suite) testReadAll(t *testing.T) {
	st := s.store(t)
	for _, from := range []uint64{0, 1, 7} {
		if got := MustReadAll(t, st, from, events.Filter{}); len(got) != 0 {
			t.Fatalf("ReadAll(%d) of an empty store yields %d events", from, len(got))
		}
	}
	streams := []string{"ra-a", "ra-b", "rb-c"}
	for i := range 12 {
		MustAppend(t, st, streams[i%3], events.Any, NewEvents(1+i%2)...)
	}
	all := MustReadAll(t, st, 0, events.Filter{})
	if len(all) != 18 {
		t.Fatalf("ReadAll yields %d events, want 18", len(all))
	}
	CheckChain(t, all)
	for _, tc := range []struct{ from, first uint64 }{
		{0, 1}, {1, 1}, {2, 2}, {7, 7}, {18, 18}, {19, 19}, {20, 19}, {1 << 40, 19}, {^uint64(0), 19},
	} {
		checkSame(t, fmt.Sprintf("ReadAll(%d)", tc.from), all[tc.first-1:], MustReadAll(t, st, tc.from, events.Filter{}))
	}
}

func (s *suite) testReadAllFilter(t *testing.T) {
	st := s.store(t)
	const typeA, typeAB, typeB = "logbook.test.A", "logbook.test.AB", "logbook.test.B"
	appends := []struct{ stream, typ string }{
		{"unit-a", typeA}, {"unit-b", typeB}, {"units-c", typeA}, {"unitx-d", typeAB},
		{"process-a.b", typeB}, {"u-unit", typeA}, {"unit-a", typeAB}, {"process-a.b", typeA},
	}
	for round := range 2 {
		for _, a := range appends {
			evs := NewEvents(1 + round)
			for i := range evs {
				evs[i].Type = a.typ
			}
			MustAppend(t, st, a.stream, events.Any, evs...)
		}
	}
	all := MustReadAll(t, st, 0, events.Filter{})
	tests := []struct {
		filter events.Filter
		n      int // events selected from the whole log, as a sanity check of Match
	}{
		{events.Filter{}, 24},
		{events.Filter{Categories: []string{"unit"}}, 9},
		{events.Filter{Categories: []string{"unit", "process"}}, 15},
		{events.Filter{Categories: []string{"units"}}, 3},
		{events.Filter{Categories: []string{"un"}}, 0},
		{events.Filter{Categories: []string{"nope"}}, 0},
		{events.Filter{Types: []string{typeA}}, 12},
		{events.Filter{Types: []string{"logbook.test"}}, 0},
		{events.Filter{Types: []string{typeA, "logbook.test.None"}}, 12},
		{events.Filter{Types: []string{typeAB, typeB}}, 12},
		{events.Filter{Categories: []string{"unit"}, Types: []string{typeB}}, 3},
		{events.Filter{Categories: []string{"unit", "unitx"}, Types: []string{typeAB}}, 6},
		{events.Filter{Categories: []string{"process"}, Types: []string{typeAB}}, 0},
	}
	for _, tc := range tests {
		for _, from := range []uint64{0, 1, 10, 24, 25} {
			var want []events.Event
			for _, ev := range all {
				if ev.Position >= from && tc.filter.Match(ev.Stream, ev.Type) {
					want = append(want, ev)
				}
			}
			if from <= 1 && len(want) != tc.n {
				t.Fatalf("suite bug: filter %+v selects %d events, expected %d", tc.filter, len(want), tc.n)
			}
			checkSame(t, fmt.Sprintf("ReadAll(%d, %+v)", from, tc.filter), want, MustReadAll(t, st, from, tc.filter))
		}
	}
}

// testReadAppendWhileIterating: a loop body may append (no lock is held
// across yield), and a read ends at the head it started at.
func (s *suite) testReadAppendWhileIterating(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "iter-a", events.Any, NewEvents(10)...)
	reads := []struct {
		name string
		seq  func(ctx context.Context) iter.Seq2[events.Event, error]
	}{
		{"ReadAll", func(ctx context.Context) iter.Seq2[events.Event, error] {
			return st.ReadAll(ctx, 0, events.Filter{})
		}},
		{"ReadStream", func(ctx context.Context) iter.Seq2[events.Event, error] {
			return st.ReadStream(ctx, "iter-a", 0)
		}},
	}
	for _, r := range reads {
		wantN := len(MustReadStream(t, st, "iter-a", 0))
		if r.name == "ReadAll" {
			wantN = int(MustHead(t, st).Position)
		}
		n, err := withDeadline(t, r.name+" with an Append in its loop body", func() (int, error) {
			n := 0
			for _, err := range r.seq(Context(t)) {
				if err != nil {
					return n, err
				}
				if n == 0 {
					if _, err := st.Append(Context(t), "iter-a", events.Any, NewEvents(3)...); err != nil {
						return n, fmt.Errorf("append inside the loop: %w", err)
					}
				}
				n++
			}
			return n, nil
		})
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if n != wantN {
			t.Fatalf("%s yielded %d events; it must stop at the %d there were when it started", r.name, n, wantN)
		}
	}
	CheckChain(t, MustReadAll(t, st, 0, events.Filter{}))
}

// withDeadline runs f, failing t if it does not return within Timeout.
func withDeadline[T any](t testing.TB, what string, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(Timeout):
		t.Fatalf("%s: did not finish within %v (deadlock?)", what, Timeout)
		panic("unreachable")
	}
}

func (s *suite) testReadBreak(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "brk-a", events.Any, NewEvents(20)...)
	for range 3 {
		for _, err := range st.ReadAll(Context(t), 0, events.Filter{}) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		for _, err := range st.ReadStream(Context(t), "brk-a", 0) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	_, err := withDeadline(t, "Append after abandoned reads", func() (events.AppendResult, error) {
		return st.Append(Context(t), "brk-a", events.Exactly(20), NewEvent())
	})
	if err != nil {
		t.Fatalf("Append after abandoned reads: %v", err)
	}
	if n := len(MustReadAll(t, st, 0, events.Filter{})); n != 21 {
		t.Fatalf("ReadAll after abandoned reads yields %d events, want 21", n)
	}
}

// testReadCancelled: a read under a cancelled context does not pass for a
// complete one.
func (s *suite) testReadCancelled(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "cancel-a", events.Any, NewEvents(5)...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Collect(st.ReadAll(ctx, 0, events.Filter{}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadAll with a cancelled context ended with %v, want context.Canceled", err)
	}
	_, err = Collect(st.ReadStream(ctx, "cancel-a", 0))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadStream with a cancelled context ended with %v, want context.Canceled", err)
	}
}
