package readmodel_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	_ "github.com/logbook-fleet/logbook/projections/sinks"
	"github.com/logbook-fleet/logbook/projections/sinktest"
)

// sinkURLs are the sinks every read model test runs on.
var sinkURLs = []struct {
	name string
	url  func(t testing.TB) string
}{
	{"sqlite", func(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "read.db") }},
	{"postgres", sinktest.PostgresSchema},
}

// env is one test's event store and sink.
type env struct {
	t     testing.TB
	ctx   context.Context
	store events.Store
	sink  projections.Sink
}

// onEachSink runs fn once per sink, each with a fresh store and sink.
func onEachSink(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, s := range sinkURLs {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			t.Cleanup(cancel)
			url := s.url(t)
			st, err := embedded.Open(ctx, t.TempDir(), embedded.InMemory())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			sink, err := projections.OpenSink(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			fn(t, &env{t: t, ctx: ctx, store: st, sink: sink})
		})
	}
}

// md is the metadata of test events.
func md(principal string) events.Metadata {
	return events.Metadata{Principal: principal, CorrelationID: "corr-" + principal, CausationID: "cause-" + principal}
}

// append appends one event carrying msg to stream and returns its position.
func (e *env) append(stream string, msg proto.Message, meta events.Metadata) uint64 {
	e.t.Helper()
	ev, err := events.NewEvent(msg, meta)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.store.Append(e.ctx, stream, events.Any, ev)
	if err != nil {
		e.t.Fatalf("append to %s: %v", stream, err)
	}
	return res.LastPosition
}

// appendRaw appends an event of type typ with the bytes data.
func (e *env) appendRaw(stream, typ string, data []byte) uint64 {
	e.t.Helper()
	ev := events.Event{ID: events.NewID(), Type: typ, Data: data, Metadata: md("raw")}
	res, err := e.store.Append(e.ctx, stream, events.Any, ev)
	if err != nil {
		e.t.Fatalf("append to %s: %v", stream, err)
	}
	return res.LastPosition
}

// run starts ps on the env's store and sink and waits until each is ready.
func (e *env) run(ps ...projections.Projection) *projections.Runner {
	e.t.Helper()
	r, err := projections.Start(e.ctx, e.store, e.sink, ps, projections.WithLogger(quietLogger()),
		projections.WithBackoff(5*time.Millisecond, 50*time.Millisecond), projections.WithPollInterval(10*time.Millisecond))
	if err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	e.t.Cleanup(func() { r.Close() })
	for _, p := range ps {
		if err := r.WaitReady(e.ctx, p.Name); err != nil {
			e.t.Fatalf("WaitReady(%s): %v", p.Name, err)
		}
	}
	return r
}

// caughtUp waits until the runner's projection has applied the log up to
// the store's head.
func (e *env) caughtUp(r *projections.Runner, name string) {
	e.t.Helper()
	head, err := e.store.Head(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := r.Status(name)
		if st.Checkpoint >= head.Position {
			return
		}
		if st.State == projections.StateStopped || time.Now().After(deadline) {
			e.t.Fatalf("projection %s at %d of %d (%s): %v", name, st.Checkpoint, head.Position, st.State, st.LastError)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// t0 is a fixed base time for event payloads.
var t0 = time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)

func must[T any](tb testing.TB) func(T, error) T {
	return func(v T, err error) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
