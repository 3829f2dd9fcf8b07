package actors_test

import (
	"context"
	"errors"
	"io"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
)

// The counter is the test-only kind: streams "counter-<id>", state an
// Int64Value.
//
// Commands:
//   - Int64Value{n}: add n (refused with errNegative if the count would go
//     below zero; n == 0 decides nothing);
//   - UInt32Value{k}: add 1, k times (k events);
//   - Empty: reset to zero (nothing when already zero);
//   - StringValue{"panic"}: Decide panics.
//
// Events: Int64Value{delta} (added), Empty (reset).

var errNegative = errors.New("counter would go negative")

// hooks lets a test watch or block decisions.
type hooks struct {
	decide func(cmd proto.Message, env actors.Env)
}

func counterKind(h *hooks) actors.Kind {
	return actors.Define("counter",
		func(string) *wrapperspb.Int64Value { return &wrapperspb.Int64Value{} },
		func(s *wrapperspb.Int64Value, cmd proto.Message, env actors.Env) ([]proto.Message, error) {
			if h != nil && h.decide != nil {
				h.decide(cmd, env)
			}
			switch c := cmd.(type) {
			case *wrapperspb.Int64Value:
				if c.Value == 0 {
					return nil, nil
				}
				if s.Value+c.Value < 0 {
					return nil, errNegative
				}
				return []proto.Message{wrapperspb.Int64(c.Value)}, nil
			case *wrapperspb.UInt32Value:
				out := make([]proto.Message, c.Value)
				for i := range out {
					out[i] = wrapperspb.Int64(1)
				}
				return out, nil
			case *emptypb.Empty:
				if s.Value == 0 {
					return nil, nil
				}
				return []proto.Message{&emptypb.Empty{}}, nil
			case *wrapperspb.StringValue:
				if c.Value == "panic" {
					panic("counter: asked to panic")
				}
			}
			return nil, errors.New("counter: unknown command")
		},
		func(s *wrapperspb.Int64Value, ev proto.Message) *wrapperspb.Int64Value {
			switch e := ev.(type) {
			case *wrapperspb.Int64Value:
				s.Value += e.Value
			case *emptypb.Empty:
				s.Value = 0
			}
			return s
		},
		&wrapperspb.Int64Value{}, &emptypb.Empty{},
	)
}

func add(n int64) proto.Message { return wrapperspb.Int64(n) }

func mustStore(tb testing.TB) *embedded.Store {
	tb.Helper()
	st, err := embedded.Open(context.Background(), "mem", embedded.InMemory())
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func mustHost(tb testing.TB, st events.Store, h *hooks, opts ...actors.Option) *actors.Host {
	tb.Helper()
	quiet := actors.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	host, err := actors.NewHost(st, append([]actors.Option{quiet}, opts...)...)
	if err != nil {
		tb.Fatalf("NewHost: %v", err)
	}
	tb.Cleanup(func() { host.Close() })
	if err := host.Register(counterKind(h)); err != nil {
		tb.Fatalf("Register: %v", err)
	}
	return host
}

func mustExecute(tb testing.TB, host *actors.Host, stream string, cmd proto.Message) actors.Result {
	tb.Helper()
	res, err := host.Execute(context.Background(), stream, cmd, events.Metadata{Principal: "test"})
	if err != nil {
		tb.Fatalf("Execute(%s, %v): %v", stream, cmd, err)
	}
	return res
}

func count(tb testing.TB, res actors.Result) int64 {
	tb.Helper()
	s, ok := res.State.(*wrapperspb.Int64Value)
	if !ok {
		tb.Fatalf("state is %T", res.State)
	}
	return s.Value
}

// streamTotal reads the stream and returns the counter value its events
// fold to, checking that versions are dense from 1.
func streamTotal(tb testing.TB, st events.Store, stream string) (total int64, version uint64) {
	tb.Helper()
	var reg events.Registry
	reg.Register(&wrapperspb.Int64Value{}, &emptypb.Empty{})
	for ev, err := range st.ReadStream(context.Background(), stream, 1) {
		if err != nil {
			tb.Fatalf("ReadStream(%s): %v", stream, err)
		}
		if ev.Version != version+1 {
			tb.Fatalf("%s: version %d after %d", stream, ev.Version, version)
		}
		version = ev.Version
		m, err := reg.Decode(ev)
		if err != nil {
			tb.Fatal(err)
		}
		switch e := m.(type) {
		case *wrapperspb.Int64Value:
			total += e.Value
		case *emptypb.Empty:
			total = 0
		}
	}
	return total, version
}

// spyStore records where ReadStream calls start and can fail appends.
type spyStore struct {
	events.Store
	mu    sync.Mutex
	reads []uint64 // fromVersion of each ReadStream
	// failBefore and failAfter fail the next appends without writing, or
	// after writing, with errInjected.
	failBefore, failAfter atomic.Int32
	failSnapshots         atomic.Bool
}

var errInjected = errors.New("injected store failure")

func (s *spyStore) ReadStream(ctx context.Context, stream string, from uint64) iter.Seq2[events.Event, error] {
	s.mu.Lock()
	s.reads = append(s.reads, from)
	s.mu.Unlock()
	return s.Store.ReadStream(ctx, stream, from)
}

func (s *spyStore) Reads() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.reads...)
}

func (s *spyStore) Append(ctx context.Context, stream string, expect events.Expect, evs ...events.Event) (events.AppendResult, error) {
	if s.failBefore.Add(-1) >= 0 {
		return events.AppendResult{}, errInjected
	}
	s.failBefore.Store(0)
	res, err := s.Store.Append(ctx, stream, expect, evs...)
	if err == nil && s.failAfter.Add(-1) >= 0 {
		return events.AppendResult{}, errInjected
	}
	s.failAfter.Store(0)
	return res, err
}

func (s *spyStore) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if s.failSnapshots.Load() {
		return errInjected
	}
	return s.Store.SaveSnapshot(ctx, snap)
}

func save(tb testing.TB, st events.Store, snap events.Snapshot) {
	tb.Helper()
	if err := st.SaveSnapshot(context.Background(), snap); err != nil {
		tb.Fatalf("SaveSnapshot: %v", err)
	}
}

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
