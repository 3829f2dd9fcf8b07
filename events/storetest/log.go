package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
)

func (s *suite) testHead(t *testing.T) {
	st := s.store(t)
	if h := MustHead(t, st); h != (events.Head{}) {
		t.Fatalf("Head of an empty store = %+v, want the zero Head", h)
	}
	for i := range 5 {
		res := MustAppend(t, st, "head-x", events.Any, NewEvents(i+1)...)
		want := events.Head{Position: res.LastPosition, Hash: res.Hash}
		if h := MustHead(t, st); h != want {
			t.Fatalf("Head after an append = %+v, want %+v from its result", h, want)
		}
	}
	all := MustReadAll(t, st, 0, events.Filter{})
	if last := all[len(all)-1]; MustHead(t, st) != (events.Head{Position: last.Position, Hash: last.Hash}) {
		t.Fatalf("Head does not name the last event of ReadAll (position %d)", last.Position)
	}
}

func (s *suite) testHashChain(t *testing.T) {
	st := s.store(t)
	h, err := st.Verify(Context(t))
	if err != nil || h != (events.Head{}) {
		t.Fatalf("Verify of an empty store = %+v, %v; want the zero Head", h, err)
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 8 {
				if _, err := st.Append(Context(t), []string{"chain-a", "chain-b", "other-c"}[w], events.Any, NewEvents(1+i%4)...); err != nil {
					t.Errorf("Append: %v", err)
				}
			}
		})
	}
	wg.Wait()
	all := MustReadAll(t, st, 0, events.Filter{})
	CheckChain(t, all)
	if !all[0].PrevHash.IsZero() {
		t.Fatalf("position 1 has PrevHash %s, want zero", all[0].PrevHash)
	}
	head := MustHead(t, st)
	if head.Hash != all[len(all)-1].Hash || head.Position != uint64(len(all)) {
		t.Fatalf("Head %+v does not name the last event", head)
	}
	v, err := st.Verify(Context(t))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v != head {
		t.Fatalf("Verify = %+v, want the head %+v", v, head)
	}
	// Filtered and stream reads carry the same hashes as the whole log.
	for _, ev := range MustReadStream(t, st, "chain-b", 2) {
		if ev.Hash != all[ev.Position-1].Hash || ev.PrevHash != all[ev.Position-1].PrevHash {
			t.Fatalf("ReadStream: position %d carries other hashes than ReadAll", ev.Position)
		}
	}
	for _, ev := range MustReadAll(t, st, 5, events.Filter{Categories: []string{"other"}}) {
		if ev.Hash != all[ev.Position-1].Hash || ev.PrevHash != all[ev.Position-1].PrevHash {
			t.Fatalf("filtered ReadAll: position %d carries other hashes than ReadAll", ev.Position)
		}
	}
}

func (s *suite) testGlobalOrderSequential(t *testing.T) {
	st := s.store(t)
	var next uint64 = 1
	for i := range 20 {
		n := 1 + i%5
		res := MustAppend(t, st, []string{"seq-a", "seq-b", "seqz-c"}[i%3], events.Any, NewEvents(n)...)
		if res.FirstPosition != next {
			t.Fatalf("append %d: first position %d, want %d (the position after the previous append)", i, res.FirstPosition, next)
		}
		next = res.LastPosition + 1
	}
	CheckChain(t, MustReadAll(t, st, 0, events.Filter{}))
}

// testGlobalOrderConcurrent: positions are dense across racing appenders, and
// an append acknowledged before another starts has lower positions.
func (s *suite) testGlobalOrderConcurrent(t *testing.T) {
	st := s.store(t)
	const writers, each = 6, 15
	type op struct {
		start, end int64
		res        events.AppendResult
		evs        []events.Event
		stream     string
	}
	var (
		mu    sync.Mutex
		clock int64
		ops   []op
		wg    sync.WaitGroup
	)
	tick := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		clock++
		return clock
	}
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				stream := []string{"go-a", "go-b", "go-c"}[(w+i)%3]
				evs := NewEvents(1 + (w*i)%4)
				o := op{start: tick(), evs: evs, stream: stream}
				res, err := st.Append(Context(t), stream, events.Any, evs...)
				o.end = tick()
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				o.res = res
				mu.Lock()
				ops = append(ops, o)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all := MustReadAll(t, st, 0, events.Filter{})
	CheckChain(t, all)
	total := 0
	for _, o := range ops {
		total += len(o.evs)
		checkAppended(t, o.stream, o.res, o.evs, all[o.res.FirstPosition-1:o.res.LastPosition])
	}
	if total != len(all) {
		t.Fatalf("log has %d events, the appends acknowledged %d", len(all), total)
	}
	for _, a := range ops {
		for _, b := range ops {
			if a.end < b.start && a.res.LastPosition >= b.res.FirstPosition {
				t.Fatalf("append at %d..%d was acknowledged before an append at %d..%d started", a.res.FirstPosition, a.res.LastPosition, b.res.FirstPosition, b.res.LastPosition)
			}
		}
	}
	for _, stream := range []string{"go-a", "go-b", "go-c"} {
		var last uint64
		for i, ev := range MustReadStream(t, st, stream, 0) {
			if ev.Version != uint64(i+1) || ev.Position <= last {
				t.Fatalf("%s: event %d has version %d position %d after position %d", stream, i, ev.Version, ev.Position, last)
			}
			last = ev.Position
		}
	}
}

func snapshotEqual(a, b events.Snapshot) bool {
	return a.Stream == b.Stream && a.Version == b.Version && a.Type == b.Type &&
		bytes.Equal(a.State, b.State) && a.Time.Equal(b.Time)
}

func (s *suite) testSnapshot(t *testing.T) {
	st := s.store(t)
	ctx := Context(t)
	if _, err := st.LoadSnapshot(ctx, "snap-a"); !errors.Is(err, events.ErrSnapshotNotFound) {
		t.Fatalf("LoadSnapshot of a stream without one: %v, want ErrSnapshotNotFound", err)
	}
	MustAppend(t, st, "snap-a", events.Any, NewEvents(5)...)
	MustAppend(t, st, "snap-ab", events.Any, NewEvents(2)...)
	if _, err := st.LoadSnapshot(ctx, "snap-a"); !errors.Is(err, events.ErrSnapshotNotFound) {
		t.Fatalf("LoadSnapshot of a stream with events and no snapshot: %v, want ErrSnapshotNotFound", err)
	}
	state := []byte("state at 3\x00\xff")
	snap := events.Snapshot{Stream: "snap-a", Version: 3, Type: "logbook.test.State", State: state,
		Time: time.Date(2026, 11, 22, 1, 2, 3, 456789, time.UTC)}
	if err := st.SaveSnapshot(ctx, snap); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	want := snap
	want.State = bytes.Clone(state)
	state[0] = 'X' // the store keeps its own copy
	got, err := st.LoadSnapshot(ctx, "snap-a")
	if err != nil || !snapshotEqual(got, want) {
		t.Fatalf("LoadSnapshot = %+v, %v; want %+v", got, err, want)
	}
	got.State[0] = 'Y' // and hands out copies
	if again, err := st.LoadSnapshot(ctx, "snap-a"); err != nil || !snapshotEqual(again, want) {
		t.Fatalf("LoadSnapshot after the caller changed the last result = %+v, %v; want %+v", again, err, want)
	}
	if _, err := st.LoadSnapshot(ctx, "snap-ab"); !errors.Is(err, events.ErrSnapshotNotFound) {
		t.Fatalf("LoadSnapshot of snap-ab after saving snap-a's: %v, want ErrSnapshotNotFound", err)
	}

	// Replace with a newer one, at the stream's current version.
	newer := events.Snapshot{Stream: "snap-a", Version: 5, Type: "logbook.test.State2", State: []byte("state at 5"), Time: snap.Time.Add(time.Hour)}
	if err := st.SaveSnapshot(ctx, newer); err != nil {
		t.Fatalf("SaveSnapshot at the stream's version: %v", err)
	}
	if got, err := st.LoadSnapshot(ctx, "snap-a"); err != nil || !snapshotEqual(got, newer) {
		t.Fatalf("LoadSnapshot after replacing = %+v, %v; want %+v", got, err, newer)
	}
	// An empty state is a state.
	empty := events.Snapshot{Stream: "snap-ab", Version: 2, Type: "logbook.test.State", Time: snap.Time}
	if err := st.SaveSnapshot(ctx, empty); err != nil {
		t.Fatalf("SaveSnapshot with an empty state: %v", err)
	}
	if got, err := st.LoadSnapshot(ctx, "snap-ab"); err != nil || !snapshotEqual(got, empty) {
		t.Fatalf("LoadSnapshot = %+v, %v; want %+v", got, err, empty)
	}
	// Snapshots are beside the log, not in it.
	if h := MustHead(t, st); h.Position != 7 {
		t.Fatalf("head after saving snapshots is at %d, want 7", h.Position)
	}
}

func (s *suite) testSnapshotInvalid(t *testing.T) {
	st := s.store(t)
	ctx := Context(t)
	MustAppend(t, st, "snap-a", events.Any, NewEvents(3)...)
	for _, snap := range []events.Snapshot{
		{Stream: "snap-a", Version: 4, Type: "logbook.test.State", State: []byte("x")},
		{Stream: "snap-a", Version: 1 << 40, Type: "logbook.test.State", State: []byte("x")},
		{Stream: "snap-none", Version: 1, Type: "logbook.test.State", State: []byte("x")},
	} {
		err := st.SaveSnapshot(ctx, snap)
		expectErr(t, "SaveSnapshot past the stream's version", err, events.ErrInvalidEvent)
		if _, err := st.LoadSnapshot(ctx, snap.Stream); !errors.Is(err, events.ErrSnapshotNotFound) {
			t.Fatalf("LoadSnapshot after a rejected save: %v, want ErrSnapshotNotFound", err)
		}
	}
	err := st.SaveSnapshot(ctx, events.Snapshot{Stream: "Not a stream", Version: 1, Type: "logbook.test.State"})
	expectErr(t, "SaveSnapshot of an invalid stream name", err, events.ErrInvalidStreamName, events.ErrInvalidEvent)
}

// testClosed: after Close every method answers ErrClosed.
func (s *suite) testClosed(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "closed-a", events.Any, NewEvents(2)...)
	if err := st.SaveSnapshot(Context(t), events.Snapshot{Stream: "closed-a", Version: 1, Type: "t"}); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := Context(t)
	_, err := st.Append(ctx, "closed-a", events.Any, NewEvent())
	expectErr(t, "Append after Close", err, events.ErrClosed)
	_, err = Collect(st.ReadStream(ctx, "closed-a", 0))
	expectErr(t, "ReadStream after Close", err, events.ErrClosed)
	_, err = Collect(st.ReadAll(ctx, 0, events.Filter{}))
	expectErr(t, "ReadAll after Close", err, events.ErrClosed)
	_, err = withDeadline(t, "Subscribe after Close", func() ([]events.Event, error) {
		return Collect(st.Subscribe(ctx, 0, events.Filter{}))
	})
	expectErr(t, "Subscribe after Close", err, events.ErrClosed)
	_, err = st.Head(ctx)
	expectErr(t, "Head after Close", err, events.ErrClosed)
	_, err = st.Verify(ctx)
	expectErr(t, "Verify after Close", err, events.ErrClosed)
	err = st.SaveSnapshot(ctx, events.Snapshot{Stream: "closed-a", Version: 2, Type: "t"})
	expectErr(t, "SaveSnapshot after Close", err, events.ErrClosed)
	_, err = st.LoadSnapshot(ctx, "closed-a")
	expectErr(t, "LoadSnapshot after Close", err, events.ErrClosed)
	for range 2 {
		if err := st.Close(); err != nil && !errors.Is(err, events.ErrClosed) {
			t.Fatalf("second Close: %v, want nil or ErrClosed", err)
		}
	}
}

// testCloseConcurrent: Close racing every other method neither hangs nor
// panics; every call ends with success or ErrClosed.
func (s *suite) testCloseConcurrent(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "cc-a", events.Any, NewEvents(50)...)
	ctx := Context(t)
	var wg sync.WaitGroup
	okOrClosed := func(what string, err error) {
		if err != nil && !errors.Is(err, events.ErrClosed) {
			t.Errorf("%s racing Close: %v, want nil or ErrClosed", what, err)
		}
	}
	for w := range 3 {
		wg.Go(func() {
			for {
				_, err := st.Append(ctx, "cc-a", events.Any, NewEvents(1+w)...)
				if err != nil {
					okOrClosed("Append", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			_, err := Collect(st.ReadAll(ctx, 0, events.Filter{}))
			if err != nil {
				okOrClosed("ReadAll", err)
				return
			}
		}
	})
	wg.Go(func() {
		for {
			_, err := Collect(st.ReadStream(ctx, "cc-a", 40))
			if err != nil {
				okOrClosed("ReadStream", err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := uint64(1); ; i++ {
			if err := st.SaveSnapshot(ctx, events.Snapshot{Stream: "cc-a", Version: 1 + i%50, Type: "t", State: []byte("s")}); err != nil {
				okOrClosed("SaveSnapshot", err)
				return
			}
			if _, err := st.LoadSnapshot(ctx, "cc-a"); err != nil {
				okOrClosed("LoadSnapshot", err)
				return
			}
			if _, err := st.Head(ctx); err != nil {
				okOrClosed("Head", err)
				return
			}
			if i%20 == 0 {
				if _, err := st.Verify(ctx); err != nil {
					okOrClosed("Verify", err)
					return
				}
			}
		}
	})
	wg.Go(func() {
		_, err := Collect(st.Subscribe(ctx, 0, events.Filter{}))
		if !errors.Is(err, events.ErrClosed) {
			t.Errorf("Subscribe racing Close ended with %v, want ErrClosed", err)
		}
	})
	time.Sleep(30 * time.Millisecond)
	var cw sync.WaitGroup
	for range 3 {
		cw.Go(func() { closeStore(t, st) })
	}
	cw.Wait()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(Timeout):
		t.Fatalf("calls racing Close did not return within %v", Timeout)
	}
}
