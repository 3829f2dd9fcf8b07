package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
)

// wrongVersion fails t unless err is a *WrongExpectedVersionError for stream
// and expect with the given actual version.
func wrongVersion(t testing.TB, err error, stream string, expect events.Expect, actual uint64) {
	t.Helper()
	if !errors.Is(err, events.ErrWrongExpectedVersion) {
		t.Fatalf("Append(%s, %v): got error %v, want ErrWrongExpectedVersion", stream, expect, err)
	}
	var wev *events.WrongExpectedVersionError
	if !errors.As(err, &wev) {
		t.Fatalf("Append(%s, %v): %v is not a *WrongExpectedVersionError", stream, expect, err)
	}
	if wev.Actual != actual || wev.Stream != stream || wev.Expected != expect {
		t.Fatalf("Append(%s, %v): got %+v, want Stream %s, Expected %v, Actual %d", stream, expect, *wev, stream, expect, actual)
	}
}

func (s *suite) testAppendExpect(t *testing.T) {
	st := s.store(t)
	tests := []struct {
		name    string
		initial int // events in the stream before the Append
		expect  events.Expect
		ok      bool
	}{
		{"any/empty", 0, events.Any, true},
		{"any/existing", 2, events.Any, true},
		{"nostream/empty", 0, events.NoStream, true},
		{"nostream/existing", 2, events.NoStream, false},
		{"exists/empty", 0, events.Exists, false},
		{"exists/existing", 2, events.Exists, true},
		{"exactly0/empty", 0, events.Exactly(0), true},
		{"exactly0/existing", 1, events.Exactly(0), false},
		{"exactly1/empty", 0, events.Exactly(1), false},
		{"exactly/current", 3, events.Exactly(3), true},
		{"exactly/behind", 3, events.Exactly(2), false},
		{"exactly/ahead", 3, events.Exactly(4), false},
		{"exactly/far-ahead", 1, events.Exactly(1 << 40), false},
	}
	for i, tc := range tests {
		stream := fmt.Sprintf("expect-row%d", i)
		// Another stream moves the global position so that versions and
		// positions differ.
		MustAppend(t, st, fmt.Sprintf("other-row%d", i), events.Any, NewEvents(i%3+1)...)
		if tc.initial > 0 {
			MustAppend(t, st, stream, events.Any, NewEvents(tc.initial)...)
		}
		evs := NewEvents(2)
		res, err := st.Append(Context(t), stream, tc.expect, evs...)
		if !tc.ok {
			wrongVersion(t, err, stream, tc.expect, uint64(tc.initial))
			if tc.initial == 0 {
				_, err := Collect(st.ReadStream(Context(t), stream, 0))
				expectErr(t, tc.name+": ReadStream after a failed Append", err, events.ErrStreamNotFound)
			} else if got := MustReadStream(t, st, stream, 0); len(got) != tc.initial {
				t.Fatalf("%s: stream has %d events after a failed Append, want %d", tc.name, len(got), tc.initial)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Append(%v) to a stream at version %d: %v", tc.name, tc.expect, tc.initial, err)
		}
		if res.FirstVersion != uint64(tc.initial+1) || res.LastVersion != uint64(tc.initial+2) {
			t.Fatalf("%s: got versions %d..%d, want %d..%d", tc.name, res.FirstVersion, res.LastVersion, tc.initial+1, tc.initial+2)
		}
		checkAppended(t, stream, res, evs, MustReadStream(t, st, stream, uint64(tc.initial+1)))
	}
}

// testAppendExpectRace: in each round every writer appends with Exactly(v)
// at once; exactly one wins version v+1 and every loser learns it.
func (s *suite) testAppendExpectRace(t *testing.T) {
	st := s.store(t)
	const (
		writers = 6
		rounds  = 15
		stream  = "race-one"
	)
	winners := make([]uuid.UUID, 0, rounds)
	for round := range rounds {
		v := uint64(round)
		expect := events.Exactly(v)
		start := make(chan struct{})
		var wg sync.WaitGroup
		results := make([]events.AppendResult, writers)
		errs := make([]error, writers)
		evs := NewEvents(writers)
		for w := range writers {
			wg.Go(func() {
				<-start
				results[w], errs[w] = st.Append(Context(t), stream, expect, evs[w])
			})
		}
		close(start)
		wg.Wait()
		won := -1
		for w := range writers {
			if errs[w] == nil {
				if won >= 0 {
					t.Fatalf("round %d: writers %d and %d both appended with %v", round, won, w, expect)
				}
				won = w
				if results[w].FirstVersion != v+1 {
					t.Fatalf("round %d: winner got version %d, want %d", round, results[w].FirstVersion, v+1)
				}
				continue
			}
			wrongVersion(t, errs[w], stream, expect, v+1)
		}
		if won < 0 {
			t.Fatalf("round %d: no writer appended with %v", round, expect)
		}
		winners = append(winners, evs[won].ID)
	}
	got := MustReadStream(t, st, stream, 0)
	if len(got) != rounds {
		t.Fatalf("stream has %d events, want %d", len(got), rounds)
	}
	for i, ev := range got {
		if ev.Version != uint64(i+1) || ev.Position != uint64(i+1) || ev.ID != winners[i] {
			t.Fatalf("event %d: version %d position %d id %s, want %d %d %s (the winner)", i, ev.Version, ev.Position, ev.ID, i+1, i+1, winners[i])
		}
	}
	CheckChain(t, MustReadAll(t, st, 0, events.Filter{}))
}

// testAppendExpectContention: writers loop read-decide-append with Exactly
// and retry on conflict; every event lands exactly once, versions dense.
func (s *suite) testAppendExpectContention(t *testing.T) {
	st := s.store(t)
	const (
		writers = 4
		each    = 10
		stream  = "race-contended"
	)
	var (
		wg        sync.WaitGroup
		conflicts atomic.Int64
		mine      = make([][]uuid.UUID, writers)
	)
	for w := range writers {
		wg.Go(func() {
			var v uint64
			for range each {
				ev := NewEvent()
				for attempt := 0; ; attempt++ {
					if attempt > 1000 {
						t.Errorf("writer %d: no progress after %d attempts", w, attempt)
						return
					}
					res, err := st.Append(Context(t), stream, events.Exactly(v), ev)
					var wev *events.WrongExpectedVersionError
					if errors.As(err, &wev) {
						if wev.Actual <= v {
							t.Errorf("writer %d: Append(Exactly(%d)) failed with Actual %d; the stream only grows", w, v, wev.Actual)
							return
						}
						conflicts.Add(1)
						v = wev.Actual
						continue
					}
					if err != nil {
						t.Errorf("writer %d: Append: %v", w, err)
						return
					}
					if res.FirstVersion != v+1 {
						t.Errorf("writer %d: Append(Exactly(%d)) got version %d, want %d", w, v, res.FirstVersion, v+1)
						return
					}
					v = res.LastVersion
					mine[w] = append(mine[w], ev.ID)
					break
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := MustReadStream(t, st, stream, 0)
	if len(got) != writers*each {
		t.Fatalf("stream has %d events, want %d", len(got), writers*each)
	}
	seen := make(map[uuid.UUID]bool)
	for i, ev := range got {
		if ev.Version != uint64(i+1) {
			t.Fatalf("event %d has version %d", i, ev.Version)
		}
		seen[ev.ID] = true
	}
	for w := range writers {
		for _, id := range mine[w] {
			if !seen[id] {
				t.Fatalf("writer %d: acknowledged event %s is missing", w, id)
			}
		}
	}
	t.Logf("%d conflicts", conflicts.Load())
}

func (s *suite) testAppendIdempotent(t *testing.T) {
	st := s.store(t)
	const stream = "idem-a"
	ab := NewEvents(2)
	MustAppend(t, st, "idem-other", events.Any, NewEvents(3)...)
	orig := MustAppend(t, st, stream, events.NoStream, ab...)
	cs := NewEvents(1)
	later := MustAppend(t, st, stream, events.Exactly(2), cs...)
	head := MustHead(t, st)

	// Re-appends of the same ids at the same place, consistent with expect:
	// the original result, nothing appended. The stream has moved on since.
	same := []struct {
		name   string
		evs    []events.Event
		expect events.Expect
		want   events.AppendResult
	}{
		{"nostream", ab, events.NoStream, orig},
		{"exactly0", ab, events.Exactly(0), orig},
		{"any", ab, events.Any, orig},
		{"single/exactly2", cs, events.Exactly(2), later},
		{"single/exists", cs, events.Exists, later},
		{"single/any", cs, events.Any, later},
	}
	for _, tc := range same {
		retry := clone(tc.evs)
		res, err := st.Append(Context(t), stream, tc.expect, retry...)
		if err != nil {
			t.Fatalf("%s: re-append of the same ids: %v, want the original result", tc.name, err)
		}
		if res != tc.want {
			t.Fatalf("%s: re-append returned %+v, want the original %+v", tc.name, res, tc.want)
		}
		if h := MustHead(t, st); h != head {
			t.Fatalf("%s: re-append moved the head from %+v to %+v", tc.name, head, h)
		}
	}
	if got := MustReadStream(t, st, stream, 0); len(got) != 3 {
		t.Fatalf("stream has %d events after re-appends, want 3", len(got))
	}

	// The same ids, not at the place this call would put them.
	elsewhere := []struct {
		name   string
		stream string
		evs    []events.Event
		expect events.Expect
	}{
		{"other-stream", "idem-b", ab, events.Any},
		{"other-stream-nostream", "idem-b", ab, events.NoStream},
		{"reordered", stream, []events.Event{ab[1], ab[0]}, events.Any},
		{"at-current-version", stream, ab, events.Exactly(3)},
		{"mixed-new", stream, append(clone(ab), NewEvent()), events.Any},
		{"new-then-old", stream, append(NewEvents(1), ab...), events.Any},
		{"other-stream-single", "idem-b", cs, events.Any},
	}
	for _, tc := range elsewhere {
		_, err := st.Append(Context(t), tc.stream, tc.expect, tc.evs...)
		expectErr(t, tc.name, err, events.ErrDuplicateEventID)
		if h := MustHead(t, st); h != head {
			t.Fatalf("%s: a rejected append moved the head from %+v to %+v", tc.name, head, h)
		}
	}
	// Same ids and place but an expectation that contradicts it: rejected
	// one way or the other, never appended.
	contradict := []struct {
		name   string
		evs    []events.Event
		expect events.Expect
	}{
		{"exists-before-first", ab, events.Exists},
		{"exactly-wrong", ab, events.Exactly(7)},
		{"nostream-later-event", cs, events.NoStream},
		{"suffix-as-first", ab[1:], events.Exactly(0)},
	}
	for _, tc := range contradict {
		_, err := st.Append(Context(t), stream, tc.expect, tc.evs...)
		expectErr(t, tc.name, err, events.ErrDuplicateEventID, events.ErrWrongExpectedVersion)
		if h := MustHead(t, st); h != head {
			t.Fatalf("%s: a rejected append moved the head from %+v to %+v", tc.name, head, h)
		}
	}
	CheckChain(t, MustReadAll(t, st, 0, events.Filter{}))
}

// testAppendIdempotentConcurrent: several callers retry the same append at
// once; one copy is stored and all get its result.
func (s *suite) testAppendIdempotentConcurrent(t *testing.T) {
	st := s.store(t)
	const callers = 8
	for round := range 5 {
		stream := fmt.Sprintf("idem-race%d", round)
		evs := NewEvents(round%3 + 1)
		start := make(chan struct{})
		var wg sync.WaitGroup
		results := make([]events.AppendResult, callers)
		errs := make([]error, callers)
		for c := range callers {
			wg.Go(func() {
				<-start
				results[c], errs[c] = st.Append(Context(t), stream, events.NoStream, clone(evs)...)
			})
		}
		close(start)
		wg.Wait()
		for c := range callers {
			if errs[c] != nil {
				t.Fatalf("round %d: caller %d: %v; concurrent retries of one append must all get its result", round, c, errs[c])
			}
			if results[c] != results[0] {
				t.Fatalf("round %d: caller %d got %+v, caller 0 got %+v", round, c, results[c], results[0])
			}
		}
		checkAppended(t, stream, results[0], evs, MustReadStream(t, st, stream, 0))
	}
	CheckChain(t, MustReadAll(t, st, 0, events.Filter{}))
}

func (s *suite) testAppendDuplicateID(t *testing.T) {
	st := s.store(t)
	first := NewEvents(3)
	MustAppend(t, st, "dup-a", events.Any, first...)
	head := MustHead(t, st)

	// A batch with one known id among new ones is rejected whole, and its
	// new ids stay usable.
	batch := NewEvents(3)
	batch[1].ID = first[2].ID
	_, err := st.Append(Context(t), "dup-b", events.Any, batch...)
	expectErr(t, "known id inside a batch", err, events.ErrDuplicateEventID)
	if h := MustHead(t, st); h != head {
		t.Fatalf("rejected batch moved the head from %+v to %+v", head, h)
	}
	if _, err := Collect(st.ReadStream(Context(t), "dup-b", 0)); !errors.Is(err, events.ErrStreamNotFound) {
		t.Fatalf("ReadStream of a stream whose only append was rejected: %v, want ErrStreamNotFound", err)
	}
	MustAppend(t, st, "dup-b", events.NoStream, batch[0], batch[2])

	// The same id twice in one call is an invalid event.
	ev := NewEvent()
	_, err = st.Append(Context(t), "dup-c", events.Any, ev, NewEvent(), ev)
	expectErr(t, "same id twice in one append", err, events.ErrInvalidEvent)
	MustAppend(t, st, "dup-c", events.NoStream, ev)
}

func (s *suite) testAppendAtomicBatch(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "batch-pre", events.Any, NewEvents(4)...)
	evs := NewEvents(5)
	res := MustAppend(t, st, "batch-a", events.NoStream, evs...)
	if res.FirstVersion != 1 || res.LastVersion != 5 || res.FirstPosition != 5 || res.LastPosition != 9 {
		t.Fatalf("Append of 5 events after 4 = %+v, want versions 1..5, positions 5..9", res)
	}
	checkAppended(t, "batch-a", res, evs, MustReadAll(t, st, 5, events.Filter{}))

	// One invalid event in the middle: nothing appended, other ids unburned.
	head := MustHead(t, st)
	bad := NewEvents(4)
	bad[2].Type = ""
	_, err := st.Append(Context(t), "batch-a", events.Exactly(5), bad...)
	expectErr(t, "invalid event in a batch", err, events.ErrInvalidEvent)
	if h := MustHead(t, st); h != head {
		t.Fatalf("rejected batch moved the head from %+v to %+v", head, h)
	}
	bad[2].Type = TestType
	res = MustAppend(t, st, "batch-a", events.Exactly(5), bad...)
	checkAppended(t, "batch-a", res, bad, MustReadStream(t, st, "batch-a", 6))

	// Concurrent batches never interleave: each owns its range of positions.
	const writers, each = 4, 6
	var wg sync.WaitGroup
	type appended struct {
		stream string
		res    events.AppendResult
		evs    []events.Event
	}
	out := make(chan appended, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				stream := fmt.Sprintf("batch-w%d", w)
				if i%2 == 1 {
					stream = "batch-shared"
				}
				evs := NewEvents(1 + (w+i)%7)
				res, err := st.Append(Context(t), stream, events.Any, evs...)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				out <- appended{stream, res, evs}
			}
		})
	}
	wg.Wait()
	close(out)
	all := MustReadAll(t, st, 0, events.Filter{})
	CheckChain(t, all)
	for a := range out {
		if a.res.LastPosition > uint64(len(all)) {
			t.Fatalf("result %+v beyond the log's %d events", a.res, len(all))
		}
		checkAppended(t, a.stream, a.res, a.evs, all[a.res.FirstPosition-1:a.res.LastPosition])
	}
	// The shared stream's versions are dense despite the interleaving.
	for i, ev := range MustReadStream(t, st, "batch-shared", 0) {
		if ev.Version != uint64(i+1) {
			t.Fatalf("batch-shared: event %d has version %d", i, ev.Version)
		}
	}
}

func (s *suite) testAppendInvalidEvent(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "valid-x", events.Any, NewEvents(2)...)
	head := MustHead(t, st)
	long := strings.Repeat("x", events.MaxMetadataFieldLen+1)
	with := func(f func(*events.Event)) []events.Event {
		evs := NewEvents(3)
		f(&evs[1])
		return evs
	}
	huge := make([]byte, events.MaxDataLen)
	tests := []struct {
		name string
		evs  []events.Event
	}{
		{"no events", nil},
		{"zero id", with(func(e *events.Event) { e.ID = uuid.Nil })},
		{"empty type", with(func(e *events.Event) { e.Type = "" })},
		{"time before MinTime", with(func(e *events.Event) { e.Time = events.MinTime.Add(-time.Nanosecond) })},
		{"time after MaxTime", with(func(e *events.Event) { e.Time = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"type too long", with(func(e *events.Event) { e.Type = strings.Repeat("t", events.MaxTypeLen+1) })},
		{"data too large", with(func(e *events.Event) { e.Data = make([]byte, events.MaxDataLen+1) })},
		{"correlation id too long", with(func(e *events.Event) { e.Metadata.CorrelationID = long })},
		{"causation id too long", with(func(e *events.Event) { e.Metadata.CausationID = long })},
		{"principal too long", with(func(e *events.Event) { e.Metadata.Principal = long })},
		{"batch data too large", func() []events.Event {
			evs := NewEvents(events.MaxAppendLen/events.MaxDataLen + 1)
			for i := range evs {
				evs[i].Data = huge
			}
			return evs
		}()},
		{"too many events", func() []events.Event {
			evs := make([]events.Event, events.MaxAppendEvents+1)
			for i := range evs {
				evs[i] = events.Event{ID: events.NewID(), Type: TestType}
			}
			return evs
		}()},
	}
	for _, tc := range tests {
		for _, stream := range []string{"valid-x", "valid-new"} {
			_, err := st.Append(Context(t), stream, events.Any, tc.evs...)
			expectErr(t, tc.name+" to "+stream, err, events.ErrInvalidEvent)
		}
	}
	if h := MustHead(t, st); h != head {
		t.Fatalf("rejected appends moved the head from %+v to %+v", head, h)
	}
	if _, err := Collect(st.ReadStream(Context(t), "valid-new", 0)); !errors.Is(err, events.ErrStreamNotFound) {
		t.Fatalf("ReadStream of a stream whose appends were all rejected: %v, want ErrStreamNotFound", err)
	}
}

// testAppendLargest: the limits are inclusive.
func (s *suite) testAppendLargest(t *testing.T) {
	st := s.store(t)
	ev := NewEvent()
	ev.Data = make([]byte, events.MaxDataLen)
	for i := range ev.Data {
		ev.Data[i] = byte(i * 7)
	}
	ev.Type = strings.Repeat("t", events.MaxTypeLen)
	ev.Metadata.Principal = strings.Repeat("p", events.MaxMetadataFieldLen)
	res := MustAppend(t, st, "large-x", events.NoStream, ev)
	checkAppended(t, "large-x", res, []events.Event{ev}, MustReadStream(t, st, "large-x", 0))
	CheckChain(t, MustReadAll(t, st, 0, events.Filter{}))
}

func (s *suite) testStreamNames(t *testing.T) {
	st := s.store(t)
	good := []string{
		"unit-ship1", "process-ship1.syslogforwarding.nginx", "release-2026.11.3", "readings-Ship_1",
		"channel-stable", "rollout-" + events.NewID().String(), "a-b", "unit-a-b", "u2-x",
		"unit-schiff-größe", "unit-" + strings.Repeat("x", events.MaxStreamNameLen-5),
		strings.Repeat("c", 32) + "-x",
	}
	for i, name := range good {
		evs := NewEvents(1)
		res, err := st.Append(Context(t), name, events.NoStream, evs...)
		if err != nil {
			t.Fatalf("Append to valid stream %q: %v", name, err)
		}
		if res.FirstPosition != uint64(i+1) {
			t.Fatalf("Append to %q: position %d, want %d", name, res.FirstPosition, i+1)
		}
		checkAppended(t, name, res, evs, MustReadStream(t, st, name, 0))
	}
	head := MustHead(t, st)
	bad := []string{
		"", "unit", "-x", "unit-", "Unit-x", "1unit-x", "un_it-x", "un.it-x",
		"unit-a b", "unit-a\tb", "unit-a\nb", "unit- ", "unit-a*b", "unit-a>b", "unit->", "unit-*",
		"unit-a\x00b", "unit-a\x7fb", "unit-a\u0085b", "unit-a\u00a0b", "unit-a\u2028b", "unit-a\u3000b",
		"unit-\xff", "unit-a\xc3", strings.Repeat("c", 33) + "-x",
		"unit-" + strings.Repeat("x", events.MaxStreamNameLen-4),
	}
	for _, name := range bad {
		_, err := st.Append(Context(t), name, events.Any, NewEvent())
		expectErr(t, fmt.Sprintf("Append to %q", name), err, events.ErrInvalidStreamName)
	}
	if h := MustHead(t, st); h != head {
		t.Fatalf("appends to invalid streams moved the head from %+v to %+v", head, h)
	}
}
