package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/events"
)

// subscriber drains a Subscribe in its own goroutine into a buffer, so the
// test can wait for events with a deadline.
type subscriber struct {
	from   uint64
	ch     chan events.Event
	done   chan struct{} // closed when the iteration ended
	err    error         // how it ended; read after done
	cancel context.CancelFunc
}

func subscribe(t testing.TB, st events.Store, from uint64, filter events.Filter) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	return subscribeCtx(t, st, ctx, cancel, from, filter)
}

func subscribeCtx(t testing.TB, st events.Store, ctx context.Context, cancel context.CancelFunc, from uint64, filter events.Filter) *subscriber {
	t.Helper()
	s := &subscriber{from: from, ch: make(chan events.Event, 1<<16), done: make(chan struct{}), cancel: cancel}
	seq := st.Subscribe(ctx, from, filter)
	go func() {
		defer close(s.done)
		if seq == nil {
			s.err = errors.New("store returned a nil iterator")
			return
		}
		for ev, err := range seq {
			if err != nil {
				s.err = err
				return
			}
			select {
			case s.ch <- ev:
			case <-t.Context().Done():
				s.err = t.Context().Err()
				return
			}
		}
		s.err = errors.New("the iteration ended without yielding an error")
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(Timeout):
			t.Errorf("Subscribe(%d) did not end within %v of its context being cancelled", from, Timeout)
		}
	})
	return s
}

// next waits for n more events.
func (s *subscriber) next(t testing.TB, n int) []events.Event {
	t.Helper()
	out := make([]events.Event, 0, n)
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for len(out) < n {
		select {
		case ev := <-s.ch:
			out = append(out, ev)
		case <-s.done:
			for len(out) < n {
				select {
				case ev := <-s.ch:
					out = append(out, ev)
					continue
				default:
				}
				t.Fatalf("Subscribe(%d) ended with %v after %d of %d expected events (positions %s)", s.from, s.err, len(out), n, positions(out))
			}
		case <-timer.C:
			t.Fatalf("Subscribe(%d): %d of %d expected events within %v (positions %s)", s.from, len(out), n, Timeout, positions(out))
		}
	}
	return out
}

// end waits for the iteration to end with an error wrapping target and
// returns the events it yielded that next did not take.
func (s *subscriber) end(t testing.TB, target error) []events.Event {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(Timeout):
		t.Fatalf("Subscribe(%d) did not end within %v, want it to end with %v", s.from, Timeout, target)
	}
	if !errors.Is(s.err, target) {
		t.Fatalf("Subscribe(%d) ended with %v, want %v", s.from, s.err, target)
	}
	var rest []events.Event
	for {
		select {
		case ev := <-s.ch:
			rest = append(rest, ev)
		default:
			return rest
		}
	}
}

// appendMany appends n batches of 1-3 events to a few streams.
func appendMany(t testing.TB, st events.Store, n int, prefix string, progress func(i int)) {
	for i := range n {
		if _, err := st.Append(Context(t), fmt.Sprintf("%s-%d", prefix, i%3), events.Any, NewEvents(1+i%3)...); err != nil {
			t.Errorf("Append %d: %v", i, err)
			return
		}
		if progress != nil {
			progress(i)
		}
	}
}

// testSubscribeRace: subscribers from the start, the middle and the head
// while appends race the switch from catch-up to live.
func (s *suite) testSubscribeRace(t *testing.T) {
	st := s.store(t)
	appendMany(t, st, 15, "pre", nil) // 30 events
	subs := []*subscriber{
		subscribe(t, st, 0, events.Filter{}),
		subscribe(t, st, 1, events.Filter{}),
		subscribe(t, st, 17, events.Filter{}),
		subscribe(t, st, MustHead(t, st).Position+1, events.Filter{}),
	}
	var (
		wg  sync.WaitGroup
		mid = make(chan struct{})
	)
	wg.Go(func() {
		appendMany(t, st, 60, "live", func(i int) {
			if i == 20 {
				close(mid)
			}
		})
	})
	wg.Go(func() { // a second writer, so the live part has concurrent commits
		appendMany(t, st, 30, "other", nil)
	})
	<-mid
	subs = append(subs,
		subscribe(t, st, MustHead(t, st).Position+1, events.Filter{}),
		subscribe(t, st, 25, events.Filter{}),
	)
	wg.Wait()
	if t.Failed() {
		return
	}
	all := MustReadAll(t, st, 0, events.Filter{})
	CheckChain(t, all)
	for _, sub := range subs {
		from := max(sub.from, 1)
		want := all[from-1:]
		checkSame(t, fmt.Sprintf("Subscribe(%d)", sub.from), want, sub.next(t, len(want)))
	}
	for _, sub := range subs {
		sub.cancel()
		if extra := sub.end(t, context.Canceled); len(extra) > 0 {
			t.Fatalf("Subscribe(%d) yielded events past the head: positions %s", sub.from, positions(extra))
		}
	}
}

func (s *suite) testSubscribeFilter(t *testing.T) {
	st := s.store(t)
	appendMany(t, st, 6, "unit", nil)
	appendMany(t, st, 6, "units", nil)
	filters := []events.Filter{
		{Categories: []string{"unit"}},
		{Categories: []string{"process", "units"}},
		{Types: []string{"logbook.test.Other"}},
		{Categories: []string{"unit"}, Types: []string{"logbook.test.Other"}},
	}
	var subs []*subscriber
	for i, f := range filters {
		subs = append(subs, subscribe(t, st, uint64(i*3), f))
	}
	for i := range 30 {
		stream := []string{"unit-a", "units-b", "process-c.d", "other-e"}[i%4]
		evs := NewEvents(1 + i%2)
		if i%3 == 0 {
			evs[0].Type = "logbook.test.Other"
		}
		MustAppend(t, st, stream, events.Any, evs...)
	}
	for i, f := range filters {
		want := MustReadAll(t, st, uint64(i*3), f)
		checkSame(t, fmt.Sprintf("Subscribe(%d, %+v)", i*3, f), want, subs[i].next(t, len(want)))
	}
	time.Sleep(50 * time.Millisecond)
	for i, sub := range subs {
		sub.cancel()
		if extra := sub.end(t, context.Canceled); len(extra) > 0 {
			t.Fatalf("Subscribe(%+v) yielded unselected or duplicate events: positions %s", filters[i], positions(extra))
		}
	}
}

// testSubscribeFuture: a subscription may start past the head and waits.
func (s *suite) testSubscribeFuture(t *testing.T) {
	st := s.store(t)
	sub0 := subscribe(t, st, 3, events.Filter{}) // on an empty log
	MustAppend(t, st, "fut-a", events.Any, NewEvents(5)...)
	sub := subscribe(t, st, 9, events.Filter{})
	for range 6 {
		MustAppend(t, st, "fut-a", events.Any, NewEvent())
	}
	all := MustReadAll(t, st, 0, events.Filter{})
	checkSame(t, "Subscribe(9)", all[8:], sub.next(t, 3))
	checkSame(t, "Subscribe(3)", all[2:], sub0.next(t, 9))
}

// testSubscribeStalled: subscribers that stop reading do not slow writers
// down, and once they read again they get every event, in order.
func (s *suite) testSubscribeStalled(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "stall-a", events.Any, NewEvent())
	ctx := Context(t)

	// A consumer blocked in its loop body.
	release := make(chan struct{})
	first := make(chan struct{})
	blocked := make(chan events.Event, 1<<16)
	blockedDone := make(chan error, 1)
	go func() {
		for ev, err := range st.Subscribe(ctx, 0, events.Filter{}) {
			if err != nil {
				blockedDone <- err
				return
			}
			blocked <- ev
			if ev.Position == 1 {
				close(first)
				<-release
			}
		}
		blockedDone <- errors.New("ended without an error")
	}()
	// A consumer that pulls one event and then nothing.
	next, stop := iter.Pull2(st.Subscribe(ctx, 0, events.Filter{}))
	defer stop()
	if ev, err, ok := next(); !ok || err != nil || ev.Position != 1 {
		t.Fatalf("pulled Subscribe: first = %d, %v, %v; want position 1", ev.Position, err, ok)
	}
	select {
	case <-first:
	case <-time.After(Timeout):
		t.Fatal("blocked Subscribe did not yield the first event")
	}

	const batches, batch, singles = 24, 256, 40
	_, err := withDeadline(t, "appends while subscribers stall", func() (struct{}, error) {
		for i := range batches {
			if _, err := st.Append(ctx, fmt.Sprintf("stall-%d", i%4), events.Any, NewEvents(batch)...); err != nil {
				return struct{}{}, err
			}
		}
		for range singles {
			if _, err := st.Append(ctx, "stall-a", events.Any, NewEvent()); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	})
	if err != nil {
		t.Fatalf("Append while subscribers stall: %v", err)
	}
	all := MustReadAll(t, st, 0, events.Filter{})
	if len(all) != 1+batches*batch+singles {
		t.Fatalf("log has %d events, want %d", len(all), 1+batches*batch+singles)
	}

	// The pulled consumer reads again: every event, in order.
	for i := 1; i < len(all); i++ {
		ev, err, ok := next()
		if !ok || err != nil {
			t.Fatalf("pulled Subscribe after stalling: at position %d: %v (ok=%v)", i+1, err, ok)
		}
		if d := EventDiff(all[i], ev); d != "" {
			t.Fatalf("pulled Subscribe after stalling: event %d: %s", i+1, d)
		}
	}
	stop()

	close(release)
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for i := 0; i < len(all); i++ {
		select {
		case ev := <-blocked:
			if d := EventDiff(all[i], ev); d != "" {
				t.Fatalf("blocked Subscribe after stalling: event %d: %s", i+1, d)
			}
		case err := <-blockedDone:
			t.Fatalf("blocked Subscribe ended with %v at position %d of %d", err, i+1, len(all))
		case <-timer.C:
			t.Fatalf("blocked Subscribe: %d of %d events within %v of being released", i, len(all), Timeout)
		}
	}
}

func (s *suite) testSubscribeCancel(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "can-a", events.Any, NewEvents(3)...)

	live := subscribe(t, st, 0, events.Filter{})
	live.next(t, 3)
	live.cancel()
	if extra := live.end(t, context.Canceled); len(extra) > 0 {
		t.Fatalf("cancelled Subscribe yielded extra events %s", positions(extra))
	}

	// The deadline must leave time to yield two stored events first, also
	// on a loaded machine under the race detector; it passes while the
	// subscription waits live.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	timed := subscribeCtx(t, st, ctx, cancel, 2, events.Filter{})
	timed.next(t, 2)
	timed.end(t, context.DeadlineExceeded)

	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	early := subscribeCtx(t, st, ctx, cancel, 0, events.Filter{})
	early.end(t, context.Canceled)

	// Cancel while the subscriber is catching up.
	MustAppend(t, st, "can-a", events.Any, NewEvents(500)...)
	ctx, cancel = context.WithCancel(t.Context())
	n := 0
	var last error
	for _, err := range st.Subscribe(ctx, 0, events.Filter{}) {
		if err != nil {
			last = err
			break
		}
		if n++; n == 10 {
			cancel()
		}
		if n > 10000 {
			break
		}
	}
	cancel()
	if !errors.Is(last, context.Canceled) {
		t.Fatalf("Subscribe cancelled during catch-up ended with %v after %d events, want context.Canceled", last, n)
	}
	MustAppend(t, st, "can-a", events.Exactly(503), NewEvent())
}

func (s *suite) testSubscribeClose(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "close-a", events.Any, NewEvents(3)...)
	subs := []*subscriber{
		subscribe(t, st, 0, events.Filter{}),
		subscribe(t, st, 4, events.Filter{}),
		subscribe(t, st, 1, events.Filter{Categories: []string{"nope"}}),
	}
	subs[0].next(t, 3)
	time.Sleep(20 * time.Millisecond) // let them go live
	closeStore(t, st)
	for _, sub := range subs {
		if extra := sub.end(t, events.ErrClosed); len(extra) > 0 {
			t.Fatalf("Subscribe(%d) yielded events %s that were never appended", sub.from, positions(extra))
		}
	}
	after := subscribe(t, st, 0, events.Filter{})
	after.end(t, events.ErrClosed)
}

// testSubscribeStalledClose: Close does not wait for a consumer stuck in its
// loop body, which then learns that the store closed.
func (s *suite) testSubscribeStalledClose(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "sc-a", events.Any, NewEvents(5)...)
	release := make(chan struct{})
	first := make(chan struct{})
	done := make(chan error, 1)
	var got []events.Event
	go func() {
		for ev, err := range st.Subscribe(Context(t), 0, events.Filter{}) {
			if err != nil {
				done <- err
				return
			}
			got = append(got, ev)
			if ev.Position == 1 {
				close(first)
				<-release
			}
		}
		done <- errors.New("ended without an error")
	}()
	<-first
	MustAppend(t, st, "sc-a", events.Any, NewEvents(5)...)
	closeStore(t, st)
	close(release)
	select {
	case err := <-done:
		if !errors.Is(err, events.ErrClosed) {
			t.Fatalf("stalled Subscribe ended with %v after Close, want ErrClosed", err)
		}
	case <-time.After(Timeout):
		t.Fatalf("stalled Subscribe did not end within %v of Close", Timeout)
	}
	for i, ev := range got {
		if ev.Position != uint64(i+1) {
			t.Fatalf("stalled Subscribe yielded positions %s before ErrClosed, want a gapless prefix", positions(got))
		}
	}
}

func (s *suite) testSubscribeBreak(t *testing.T) {
	st := s.store(t)
	MustAppend(t, st, "sb-a", events.Any, NewEvents(5)...)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range 10 {
		from := uint64(1)
		if i%2 == 1 {
			from = MustHead(t, st).Position + 1 // break on a live event
			wg.Go(func() {
				time.Sleep(time.Millisecond)
				if _, err := st.Append(Context(t), "sb-b", events.Any, NewEvent()); err != nil {
					t.Errorf("Append: %v", err)
				}
			})
		}
		n, err := withDeadline(t, "Subscribe then break", func() (int, error) {
			for ev, err := range st.Subscribe(Context(t), from, events.Filter{}) {
				if err != nil {
					return 0, err
				}
				return int(ev.Position), nil
			}
			return 0, errors.New("ended without an event or an error")
		})
		if err != nil || n != int(from) {
			t.Fatalf("Subscribe(%d): first event at %d, %v", from, n, err)
		}
	}
	MustAppend(t, st, "sb-a", events.Exactly(5), NewEvent())
}
