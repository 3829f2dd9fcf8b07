package actors_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
)

func TestExecuteDecidesAppendsEvolves(t *testing.T) {
	st := mustStore(t)
	host := mustHost(t, st, nil)
	const stream = "counter-a"

	res := mustExecute(t, host, stream, add(5))
	if res.Version != 1 || count(t, res) != 5 || res.Attempts != 1 || len(res.Events) != 1 {
		t.Fatalf("first add: %+v", res)
	}
	if res.Appended.FirstVersion != 1 || res.Appended.LastVersion != 1 || res.Appended.FirstPosition == 0 {
		t.Fatalf("first add appended %+v", res.Appended)
	}
	res = mustExecute(t, host, stream, &wrapperspb.UInt32Value{Value: 3})
	if res.Version != 4 || count(t, res) != 8 || res.Appended.FirstVersion != 2 || res.Appended.LastVersion != 4 || len(res.Events) != 3 {
		t.Fatalf("add 1 three times: %+v", res)
	}

	// Nothing decided: success, nothing appended.
	res = mustExecute(t, host, stream, add(0))
	if res.Version != 4 || count(t, res) != 8 || len(res.Events) != 0 || res.Appended != (events.AppendResult{}) {
		t.Fatalf("add 0: %+v", res)
	}
	// The result's state is a copy.
	res.State.(*wrapperspb.Int64Value).Value = 1000
	res, err := host.Read(context.Background(), stream)
	if err != nil || res.Version != 4 || count(t, res) != 8 {
		t.Fatalf("Read: %+v, %v", res, err)
	}
	if total, v := streamTotal(t, st, stream); total != 8 || v != 4 {
		t.Fatalf("stream folds to %d at version %d", total, v)
	}
}

func TestEnvAndMetadata(t *testing.T) {
	st := mustStore(t)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var got actors.Env
	host := mustHost(t, st, &hooks{decide: func(_ proto.Message, env actors.Env) { got = env }},
		actors.WithClock(func() time.Time { return now }))
	md := events.Metadata{Principal: "operator:alice", CorrelationID: "corr-1", CausationID: "cause-1"}
	if _, err := host.Execute(context.Background(), "counter-env", add(1), md); err != nil {
		t.Fatal(err)
	}
	if !got.Now.Equal(now) || got.Principal != "operator:alice" {
		t.Fatalf("Decide got env %+v", got)
	}
	for ev, err := range st.ReadStream(context.Background(), "counter-env", 1) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Metadata != md || !ev.Time.Equal(now) {
			t.Fatalf("event metadata %+v time %v", ev.Metadata, ev.Time)
		}
	}
}

func TestRefusalPassesThrough(t *testing.T) {
	st := mustStore(t)
	host := mustHost(t, st, nil)
	mustExecute(t, host, "counter-r", add(2))
	_, err := host.Execute(context.Background(), "counter-r", add(-3), events.Metadata{})
	if !errors.Is(err, errNegative) {
		t.Fatalf("add -3 to 2: got %v, want errNegative", err)
	}
	var refused *actors.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("add -3 to 2: got %T (%v), want a *actors.RefusedError", err, err)
	}
	if refused.Stream != "counter-r" || refused.Command != "google.protobuf.Int64Value" || refused.Err != errNegative {
		t.Errorf("refusal: %+v, want stream counter-r, command google.protobuf.Int64Value, errNegative", refused)
	}
	if want := "actors: counter-r refused google.protobuf.Int64Value: " + errNegative.Error(); err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if res := mustExecute(t, host, "counter-r", add(-2)); count(t, res) != 0 || res.Version != 2 {
		t.Fatalf("after refusal: %+v", res)
	}
}

func TestUnknownCategoryAndInvalidStream(t *testing.T) {
	host := mustHost(t, mustStore(t), nil)
	tests := []struct {
		stream string
		want   error
	}{
		{"unit-ship1", actors.ErrUnknownCategory},
		{"counter", events.ErrInvalidStreamName},
		{"Counter-x", events.ErrInvalidStreamName},
		{"counter-a b", events.ErrInvalidStreamName},
	}
	for _, tt := range tests {
		if _, err := host.Execute(context.Background(), tt.stream, add(1), events.Metadata{}); !errors.Is(err, tt.want) {
			t.Errorf("Execute(%q): got %v, want %v", tt.stream, err, tt.want)
		}
		if _, err := host.Read(context.Background(), tt.stream); !errors.Is(err, tt.want) {
			t.Errorf("Read(%q): got %v, want %v", tt.stream, err, tt.want)
		}
	}
}

func TestRegisterValidates(t *testing.T) {
	host, err := actors.NewHost(mustStore(t))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	good := counterKind(nil)
	noDecide := good
	noDecide.Decide = nil
	badCategory := good
	badCategory.Category = "Bad-Cat"
	if err := host.Register(good); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]actors.Kind{"duplicate": good, "no decide": noDecide, "bad category": badCategory, "empty": {}} {
		if err := host.Register(k); !errors.Is(err, actors.ErrInvalidKind) {
			t.Errorf("%s: got %v, want ErrInvalidKind", name, err)
		}
	}
}

func TestNewHostValidatesOptions(t *testing.T) {
	st := mustStore(t)
	for name, opt := range map[string]actors.Option{
		"snapshot every 0": actors.WithSnapshotEvery(0),
		"negative retries": actors.WithConflictRetries(-1),
		"negative idle":    actors.WithIdleTimeout(-time.Second),
		"sub-ms idle":      actors.WithIdleTimeout(time.Microsecond),
		"nil clock":        actors.WithClock(nil),
		"nil logger":       actors.WithLogger(nil),
	} {
		if h, err := actors.NewHost(st, opt); err == nil {
			h.Close()
			t.Errorf("%s: NewHost succeeded", name)
		}
	}
	if _, err := actors.NewHost(nil); err == nil {
		t.Error("NewHost(nil) succeeded")
	}
}

func TestRecovery(t *testing.T) {
	const stream = "counter-rec"
	tests := []struct {
		name string
		// prepare writes a snapshot (or not) after 10 adds of 1..10.
		prepare  func(t *testing.T, st events.Store)
		snapshot int // WithSnapshotEvery of the first host (0: default)
		// wantFrom is where the recovering host's ReadStream starts.
		wantFrom uint64
	}{
		{name: "no snapshot", wantFrom: 1},
		{name: "snapshot every 4", snapshot: 4, wantFrom: 9},
		{name: "snapshot of another type", wantFrom: 1, prepare: func(t *testing.T, st events.Store) {
			save(t, st, events.Snapshot{Stream: stream, Version: 5, Type: "google.protobuf.StringValue", State: mustMarshal(t, wrapperspb.String("x"))})
		}},
		{name: "undecodable snapshot", wantFrom: 1, prepare: func(t *testing.T, st events.Store) {
			save(t, st, events.Snapshot{Stream: stream, Version: 5, Type: "google.protobuf.Int64Value", State: []byte{0xff, 0xff, 0xff}})
		}},
		{name: "snapshot written by hand", wantFrom: 8, prepare: func(t *testing.T, st events.Store) {
			// 1+...+7 = 28
			save(t, st, events.Snapshot{Stream: stream, Version: 7, Type: "google.protobuf.Int64Value", State: mustMarshal(t, wrapperspb.Int64(28))})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spy := &spyStore{Store: mustStore(t)}
			var opts []actors.Option
			if tt.snapshot > 0 {
				opts = append(opts, actors.WithSnapshotEvery(tt.snapshot))
			}
			first := mustHost(t, spy, nil, opts...)
			for i := int64(1); i <= 10; i++ {
				mustExecute(t, first, stream, add(i))
			}
			first.Close()
			if tt.prepare != nil {
				tt.prepare(t, spy.Store)
			}
			before := len(spy.Reads())
			second := mustHost(t, spy, nil)
			res, err := second.Read(context.Background(), stream)
			if err != nil {
				t.Fatal(err)
			}
			if count(t, res) != 55 || res.Version != 10 {
				t.Fatalf("recovered %d at version %d, want 55 at 10", count(t, res), res.Version)
			}
			reads := spy.Reads()[before:]
			if len(reads) != 1 || reads[0] != tt.wantFrom {
				t.Fatalf("recovery read the stream from %v, want [%d]", reads, tt.wantFrom)
			}
			// And it keeps going from there.
			if res := mustExecute(t, second, stream, add(1)); count(t, res) != 56 || res.Version != 11 {
				t.Fatalf("after recovery: %+v", res)
			}
		})
	}
}

func TestSnapshotFailureIsNotACommandFailure(t *testing.T) {
	spy := &spyStore{Store: mustStore(t)}
	spy.failSnapshots.Store(true)
	host := mustHost(t, spy, nil, actors.WithSnapshotEvery(1))
	for i := 0; i < 3; i++ {
		mustExecute(t, host, "counter-snap", add(1))
	}
	if _, err := spy.LoadSnapshot(context.Background(), "counter-snap"); !errors.Is(err, events.ErrSnapshotNotFound) {
		t.Fatalf("LoadSnapshot: %v", err)
	}
	spy.failSnapshots.Store(false)
	mustExecute(t, host, "counter-snap", add(1))
	if _, err := host.Read(context.Background(), "counter-snap"); err != nil { // ordered after the snapshot
		t.Fatal(err)
	}
	snap, err := spy.LoadSnapshot(context.Background(), "counter-snap")
	if err != nil || snap.Version != 4 || snap.Type != "google.protobuf.Int64Value" {
		t.Fatalf("LoadSnapshot: %+v, %v", snap, err)
	}
}

func TestPassivationAndReactivation(t *testing.T) {
	spy := &spyStore{Store: mustStore(t)}
	host := mustHost(t, spy, nil, actors.WithIdleTimeout(20*time.Millisecond))
	for i := 0; i < 3; i++ {
		mustExecute(t, host, "counter-p", add(2))
	}
	mustExecute(t, host, "counter-q", add(1))
	if n := host.Live(); n != 2 {
		t.Fatalf("Live = %d, want 2", n)
	}
	waitFor(t, "entities to passivate", func() bool { return host.Live() == 0 })
	reads := len(spy.Reads())
	res := mustExecute(t, host, "counter-p", add(1))
	if count(t, res) != 7 || res.Version != 4 {
		t.Fatalf("after reactivation: %+v", res)
	}
	if len(spy.Reads()) != reads+1 {
		t.Fatalf("reactivation read the stream %d times, want once", len(spy.Reads())-reads)
	}

	// Explicit passivation.
	if err := host.Passivate(context.Background(), "counter-p"); err != nil {
		t.Fatal(err)
	}
	if err := host.Passivate(context.Background(), "counter-none"); err != nil {
		t.Fatal(err)
	}
	if res := mustExecute(t, host, "counter-p", add(1)); count(t, res) != 8 || res.Version != 5 {
		t.Fatalf("after Passivate: %+v", res)
	}
}

// Commands racing passivation (an idle timeout of 1 ms and explicit
// Passivate calls) are never lost and never handled by a stopping entity.
func TestPassivationRacesCommands(t *testing.T) {
	st := mustStore(t)
	host := mustHost(t, st, nil, actors.WithIdleTimeout(time.Millisecond))
	const (
		streams = 3
		workers = 6
		each    = 40
	)
	ctx := context.Background()
	stop := make(chan struct{})
	var passivator sync.WaitGroup
	passivator.Add(1)
	go func() {
		defer passivator.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := host.Passivate(ctx, fmt.Sprintf("counter-race%d", i%streams)); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		}
	}()
	var sums [streams]atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				s := rand.IntN(streams)
				n := int64(rand.IntN(5) + 1)
				if _, err := host.Execute(ctx, fmt.Sprintf("counter-race%d", s), add(n), events.Metadata{}); err != nil {
					t.Error(err)
					return
				}
				sums[s].Add(n)
				time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	close(stop)
	passivator.Wait()
	for s := range streams {
		stream := fmt.Sprintf("counter-race%d", s)
		res, err := host.Read(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		total, version := streamTotal(t, st, stream)
		if count(t, res) != sums[s].Load() || total != sums[s].Load() || res.Version != version {
			t.Errorf("%s: entity %d at %d, stream %d at %d, acknowledged %d", stream, count(t, res), res.Version, total, version, sums[s].Load())
		}
	}
}

func TestConcurrentCommandsToOneEntity(t *testing.T) {
	st := mustStore(t)
	host := mustHost(t, st, nil, actors.WithSnapshotEvery(7))
	const workers, each = 16, 25
	var mu sync.Mutex
	var versions []uint64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				res, err := host.Execute(context.Background(), "counter-c", add(1), events.Metadata{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				versions = append(versions, res.Version)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(versions)
	for i, v := range versions {
		if v != uint64(i+1) {
			t.Fatalf("result versions are not 1..%d: %v", workers*each, versions)
		}
	}
	total, version := streamTotal(t, st, "counter-c")
	if total != workers*each || version != workers*each {
		t.Fatalf("stream folds to %d at version %d", total, version)
	}
}

// Two hosts on one store race for the same entity: the store's expected
// version is the fence, so every acknowledged command is in the log exactly
// once and nothing else is.
func TestTwoHostsRaceOneEntity(t *testing.T) {
	for _, retries := range []int{0, actors.DefaultConflictRetries} {
		t.Run(fmt.Sprintf("retries=%d", retries), func(t *testing.T) {
			st := mustStore(t)
			hosts := []*actors.Host{
				mustHost(t, st, nil, actors.WithConflictRetries(retries)),
				mustHost(t, st, nil, actors.WithConflictRetries(retries)),
			}
			const stream = "counter-shared"
			const workers, each = 4, 30
			var acked, conflicts atomic.Int64
			var wg sync.WaitGroup
			for _, host := range hosts {
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < each; i++ {
							n := int64(rand.IntN(9) + 1)
							res, err := host.Execute(context.Background(), stream, add(n), events.Metadata{})
							switch {
							case err == nil:
								acked.Add(n)
								if res.Attempts > retries+1 {
									t.Errorf("decided %d times with %d retries", res.Attempts, retries)
								}
							case errors.Is(err, actors.ErrConflict):
								if !errors.Is(err, events.ErrWrongExpectedVersion) {
									t.Errorf("ErrConflict does not wrap ErrWrongExpectedVersion: %v", err)
								}
								conflicts.Add(1)
							default:
								t.Error(err)
								return
							}
						}
					}()
				}
			}
			wg.Wait()
			total, _ := streamTotal(t, st, stream)
			if total != acked.Load() {
				t.Fatalf("stream folds to %d, acknowledged %d (lost or phantom update)", total, acked.Load())
			}
			// A host that lost the last race holds a stale state until its
			// next append, which the store fences: the append fails (with
			// no retries) or is decided again on the true state.
			for i, host := range hosts {
				var res actors.Result
				var err error
				for range 2 {
					if res, err = host.Execute(context.Background(), stream, add(1), events.Metadata{}); err == nil {
						break
					}
					if !errors.Is(err, actors.ErrConflict) {
						t.Fatal(err)
					}
				}
				if err != nil {
					t.Fatalf("host %d: %v", i, err)
				}
				total, _ := streamTotal(t, st, stream)
				if count(t, res) != total {
					t.Errorf("host %d sees %d, stream has %d", i, count(t, res), total)
				}
			}
			t.Logf("acknowledged %d, %d commands failed with ErrConflict", acked.Load(), conflicts.Load())
		})
	}
}

// An append that fails (before or after writing) fails its command; the
// entity re-reads its stream, so the next command sees the true state.
func TestAppendFailureRereads(t *testing.T) {
	for _, tt := range []struct {
		name      string
		after     bool
		wantCount int64
	}{
		{name: "fails before writing", after: false, wantCount: 1},
		{name: "fails after writing", after: true, wantCount: 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spy := &spyStore{Store: mustStore(t)}
			host := mustHost(t, spy, nil)
			const stream = "counter-crash"
			mustExecute(t, host, stream, &emptypb.Empty{}) // activate
			if tt.after {
				spy.failAfter.Store(1)
			} else {
				spy.failBefore.Store(1)
			}
			if _, err := host.Execute(context.Background(), stream, add(5), events.Metadata{}); !errors.Is(err, errInjected) {
				t.Fatalf("got %v, want errInjected", err)
			}
			res := mustExecute(t, host, stream, add(1))
			if count(t, res) != tt.wantCount || res.Attempts != 1 {
				t.Fatalf("next command: %+v, want count %d in one attempt", res, tt.wantCount)
			}
			if total, version := streamTotal(t, spy.Store, stream); total != tt.wantCount || version != res.Version {
				t.Fatalf("stream folds to %d at %d, entity %d at %d", total, version, count(t, res), res.Version)
			}
		})
	}
}

func TestDeciderPanicRestartsEntity(t *testing.T) {
	spy := &spyStore{Store: mustStore(t)}
	host := mustHost(t, spy, nil)
	const stream = "counter-panic"
	mustExecute(t, host, stream, add(3))
	// More panics than protoactor's default strategy tolerates (10 in 10 s).
	for i := 0; i < 15; i++ {
		reads := len(spy.Reads())
		_, err := host.Execute(context.Background(), stream, wrapperspb.String("panic"), events.Metadata{})
		if !errors.Is(err, actors.ErrEntityPanicked) {
			t.Fatalf("panic %d: got %v, want ErrEntityPanicked", i, err)
		}
		res := mustExecute(t, host, stream, add(1))
		if count(t, res) != int64(4+i) || res.Version != uint64(2+i) {
			t.Fatalf("after panic %d: %+v", i, res)
		}
		if got := len(spy.Reads()) - reads; got != 1 {
			t.Fatalf("after panic %d the entity read its stream %d times, want 1 (recovery)", i, got)
		}
	}
	if n := host.Live(); n != 1 {
		t.Fatalf("Live = %d, want 1", n)
	}
}

func TestContextEndsWhileQueued(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := &hooks{decide: func(cmd proto.Message, _ actors.Env) {
		if v, ok := cmd.(*wrapperspb.Int64Value); ok && v.Value == 100 {
			entered <- struct{}{}
			<-release
		}
	}}
	st := mustStore(t)
	host := mustHost(t, st, h)
	const stream = "counter-ctx"
	first := make(chan error, 1)
	go func() {
		_, err := host.Execute(context.Background(), stream, add(100), events.Metadata{})
		first <- err
	}()
	<-entered

	// Queued behind the blocked command: dropped when ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, err := host.Execute(ctx, stream, add(1), events.Metadata{})
	cancel()
	if !errors.Is(err, actors.ErrNotExecuted) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, actors.ErrOutcomeUnknown) {
		t.Fatalf("queued command: got %v, want ErrNotExecuted and DeadlineExceeded", err)
	}

	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	res, err := host.Read(context.Background(), stream)
	if err != nil || count(t, res) != 100 || res.Version != 1 {
		t.Fatalf("Read: %+v, %v (the dropped command must not run)", res, err)
	}
}

func TestContextEndsWhileDeciding(t *testing.T) {
	release := make(chan struct{})
	h := &hooks{decide: func(cmd proto.Message, _ actors.Env) {
		if v, ok := cmd.(*wrapperspb.Int64Value); ok && v.Value == 100 {
			<-release
		}
	}}
	st := mustStore(t)
	host := mustHost(t, st, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := host.Execute(ctx, "counter-ctx", add(100), events.Metadata{})
	if !errors.Is(err, actors.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, actors.ErrNotExecuted) {
		t.Fatalf("got %v, want ErrOutcomeUnknown and DeadlineExceeded", err)
	}
	close(release)
	// The command ran to completion.
	res, err := host.Read(context.Background(), "counter-ctx")
	if err != nil || count(t, res) != 100 {
		t.Fatalf("Read: %+v, %v", res, err)
	}
	// A ctx that is already done never sends anything.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if _, err := host.Execute(done, "counter-ctx", add(1), events.Metadata{}); !errors.Is(err, actors.ErrNotExecuted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("done ctx: %v", err)
	}
}

func TestClose(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := &hooks{decide: func(cmd proto.Message, _ actors.Env) {
		if v, ok := cmd.(*wrapperspb.Int64Value); ok && v.Value == 100 {
			entered <- struct{}{}
			<-release
		}
	}}
	st := mustStore(t)
	host := mustHost(t, st, h)
	mustExecute(t, host, "counter-other", add(1))

	results := make(chan error, 2)
	go func() {
		_, err := host.Execute(context.Background(), "counter-close", add(100), events.Metadata{})
		results <- err
	}()
	<-entered
	go func() { // queued behind the blocked one: still answered
		_, err := host.Execute(context.Background(), "counter-close", add(1), events.Metadata{})
		results <- err
	}()
	// Give the second command a moment to reach the mailbox; either way
	// it is answered (by the entity, or with ErrClosed), never dropped.
	time.Sleep(20 * time.Millisecond)

	closed := make(chan struct{})
	go func() { host.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a command was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	for range 2 {
		if err := <-results; err != nil && !errors.Is(err, actors.ErrClosed) {
			t.Fatalf("in-flight command: %v", err)
		}
	}
	if n := host.Live(); n != 0 {
		t.Fatalf("Live after Close = %d", n)
	}
	if err := host.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := host.Execute(context.Background(), "counter-close", add(1), events.Metadata{}); !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("Execute after Close: %v", err)
	}
	if _, err := host.Read(context.Background(), "counter-close"); !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := host.Register(actors.Kind{Category: "other"}); !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("Register after Close: %v", err)
	}
	if total, _ := streamTotal(t, st, "counter-close"); total != 100 && total != 101 {
		t.Fatalf("stream folds to %d", total)
	}
}

func TestOnDisk(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := embedded.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	host := mustHost(t, st, nil, actors.WithSnapshotEvery(3))
	for i := 0; i < 10; i++ {
		mustExecute(t, host, "counter-disk", add(2))
	}
	mustExecute(t, host, "counter-disk", &emptypb.Empty{})
	mustExecute(t, host, "counter-disk", add(7))
	host.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = embedded.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	host = mustHost(t, st, nil)
	res, err := host.Read(ctx, "counter-disk")
	if err != nil || count(t, res) != 7 || res.Version != 12 {
		t.Fatalf("after reopening: %+v, %v", res, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// With WithCatchUp an entity sees what other writers appended before it
// reads or decides; without it a live entity trusts its own state.
func TestCatchUpSeesOtherWriters(t *testing.T) {
	st := mustStore(t)
	writer := mustHost(t, st, nil)
	var barriers atomic.Int64
	shared := mustHost(t, st, nil, actors.WithCatchUp(func(context.Context) error { barriers.Add(1); return nil }))
	plain := mustHost(t, st, nil)
	ctx := context.Background()
	const stream = "counter-shared"
	for _, h := range []*actors.Host{shared, plain} {
		if _, err := h.Read(ctx, stream); err != nil { // live, at version 0
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := writer.Execute(ctx, stream, add(2), events.Metadata{}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := shared.Read(ctx, stream)
	if err != nil || res.Version != 3 {
		t.Fatalf("catching-up host: version %d, %v; want 3", res.Version, err)
	}
	if res, err := plain.Read(ctx, stream); err != nil || res.Version != 0 {
		t.Fatalf("plain host: version %d, %v; want its own 0 (documented)", res.Version, err)
	}
	res, err = shared.Execute(ctx, stream, add(1), events.Metadata{})
	if err != nil || res.Version != 4 || res.Attempts != 1 {
		t.Fatalf("catching-up host decided at version %d after %d attempts, %v; want 4 at the first", res.Version, res.Attempts, err)
	}
	if barriers.Load() != 3 {
		t.Fatalf("before ran %d times, want once per call (3)", barriers.Load())
	}

	failing := mustHost(t, st, nil, actors.WithCatchUp(func(context.Context) error { return errors.New("no leader") }))
	if _, err := failing.Execute(ctx, stream, add(1), events.Metadata{}); err == nil || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("Execute with a failing barrier: %v", err)
	}
}

func TestExecuteNoState(t *testing.T) {
	st := mustStore(t)
	host := mustHost(t, st, nil)
	const stream = "counter-a"

	res, err := host.ExecuteNoState(context.Background(), stream, add(5), events.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != nil || res.Version != 1 || len(res.Events) != 1 || res.Appended.LastVersion != 1 {
		t.Fatalf("ExecuteNoState: %+v; want version 1, one event and no state", res)
	}
	// Nothing decided: still no state.
	if res, err = host.ExecuteNoState(context.Background(), stream, add(0), events.Metadata{}); err != nil || res.State != nil || res.Version != 1 {
		t.Fatalf("ExecuteNoState deciding nothing: %+v, %v", res, err)
	}
	// The entity evolved all the same.
	res = mustExecute(t, host, stream, add(2))
	if res.Version != 2 || count(t, res) != 7 {
		t.Fatalf("Execute after ExecuteNoState: %+v", res)
	}
	if _, err := host.ExecuteNoState(context.Background(), stream, nil, events.Metadata{}); err == nil {
		t.Fatal("ExecuteNoState with a nil command succeeded")
	}
}
