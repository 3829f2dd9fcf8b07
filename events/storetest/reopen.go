package storetest

import (
	"errors"
	"testing"

	"github.com/logbook-fleet/logbook/events"
)

// Reopener prepares a fresh, empty durable location for one test (such as a
// t.TempDir) and returns open, which opens the store kept there; every call
// opens the same location. The suite closes each store before opening the
// next one.
type Reopener func(t *testing.T) (open func() (events.Store, error))

// RunReopen checks that a durable back-end keeps everything across Close and
// open: events, hashes, stream versions, idempotency keys and snapshots.
func RunReopen(t *testing.T, reopen Reopener) {
	tests := []struct {
		name string
		fn   func(*testing.T, func() events.Store)
	}{
		{"Empty", testReopenEmpty},
		{"Durable", testReopenDurable},
		{"Subscribe", testReopenSubscribe},
		{"Generations", testReopenGenerations},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			open := reopen(t)
			var last events.Store
			tc.fn(t, func() events.Store {
				t.Helper()
				if last != nil {
					closeStore(t, last)
				}
				st, err := open()
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				last = st
				t.Cleanup(func() { closeStore(t, st) })
				return st
			})
		})
	}
}

func testReopenEmpty(t *testing.T, open func() events.Store) {
	open()
	st := open()
	checkEmpty(t, st, "reopened empty store")
	if v, err := st.Verify(Context(t)); err != nil || v != (events.Head{}) {
		t.Fatalf("Verify of a reopened empty store = %+v, %v", v, err)
	}
	res := MustAppend(t, st, "re-a", events.NoStream, NewEvent())
	if res.FirstPosition != 1 || res.FirstVersion != 1 {
		t.Fatalf("first append after reopening an empty store = %+v, want position and version 1", res)
	}
	st = open()
	CheckChain(t, MustReadAll(t, st, 0, events.Filter{}))
}

func testReopenDurable(t *testing.T, open func() events.Store) {
	st := open()
	ab := NewEvents(2)
	first := MustAppend(t, st, "re-a", events.NoStream, ab...)
	MustAppend(t, st, "re-b", events.Any, NewEvents(3)...)
	MustAppend(t, st, "re-a", events.Exactly(2), NewEvents(4)...)
	snap := events.Snapshot{Stream: "re-a", Version: 6, Type: "logbook.test.State", State: []byte("six")}
	if err := st.SaveSnapshot(Context(t), snap); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	before := MustReadAll(t, st, 0, events.Filter{})
	head := MustHead(t, st)

	st = open()
	checkSame(t, "ReadAll after reopening", before, MustReadAll(t, st, 0, events.Filter{}))
	if h := MustHead(t, st); h != head {
		t.Fatalf("Head after reopening = %+v, want %+v", h, head)
	}
	if v, err := st.Verify(Context(t)); err != nil || v != head {
		t.Fatalf("Verify after reopening = %+v, %v; want %+v", v, err, head)
	}
	if got, err := st.LoadSnapshot(Context(t), "re-a"); err != nil || !snapshotEqual(got, snap) {
		t.Fatalf("LoadSnapshot after reopening = %+v, %v; want %+v", got, err, snap)
	}
	if got := MustReadStream(t, st, "re-a", 3); len(got) != 4 || got[0].Version != 3 {
		t.Fatalf("ReadStream(re-a, 3) after reopening yields %d events", len(got))
	}

	// Versions, idempotency keys and the chain carry on.
	_, err := st.Append(Context(t), "re-a", events.Exactly(5), NewEvent())
	wrongVersion(t, err, "re-a", events.Exactly(5), 6)
	if res, err := st.Append(Context(t), "re-a", events.NoStream, clone(ab)...); err != nil || res != first {
		t.Fatalf("re-append of the first batch after reopening = %+v, %v; want the original %+v", res, err, first)
	}
	_, err = st.Append(Context(t), "re-c", events.Any, ab[0])
	expectErr(t, "reusing an id elsewhere after reopening", err, events.ErrDuplicateEventID)
	res := MustAppend(t, st, "re-a", events.Exactly(6), NewEvent())
	if res.FirstPosition != head.Position+1 || res.FirstVersion != 7 {
		t.Fatalf("append after reopening = %+v, want position %d, version 7", res, head.Position+1)
	}
	after := MustReadAll(t, st, 0, events.Filter{})
	CheckChain(t, after)
	if after[head.Position].PrevHash != head.Hash {
		t.Fatal("the first event after reopening does not chain to the old head")
	}

	st = open()
	checkSame(t, "ReadAll after a second reopening", after, MustReadAll(t, st, 0, events.Filter{}))
}

func testReopenSubscribe(t *testing.T, open func() events.Store) {
	st := open()
	MustAppend(t, st, "re-a", events.Any, NewEvents(7)...)
	st = open()
	sub := subscribe(t, st, 3, events.Filter{})
	MustAppend(t, st, "re-a", events.Exactly(7), NewEvents(2)...)
	checkSame(t, "Subscribe(3) after reopening", MustReadAll(t, st, 3, events.Filter{}), sub.next(t, 7))
}

func testReopenGenerations(t *testing.T, open func() events.Store) {
	var want []events.Event
	for gen := range 6 {
		st := open()
		checkSame(t, "ReadAll after reopening", want, MustReadAll(t, st, 0, events.Filter{}))
		for range gen + 1 {
			MustAppend(t, st, []string{"gen-a", "gen-b"}[gen%2], events.Any, NewEvents(1+gen)...)
		}
		if gen%2 == 0 {
			if err := st.SaveSnapshot(Context(t), events.Snapshot{Stream: "gen-a", Version: 1, Type: "s"}); err != nil && !errors.Is(err, events.ErrInvalidEvent) {
				t.Fatalf("SaveSnapshot: %v", err)
			}
		}
		want = MustReadAll(t, st, 0, events.Filter{})
	}
	CheckChain(t, want)
}
