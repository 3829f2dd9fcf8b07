package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/api"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
	"github.com/logbook-fleet/logbook/proto/logbook/v1/logbookv1connect"
)

// historyClients are the clients of the event, audit and projection
// services, authenticated as admin.
type historyClients struct {
	events      logbookv1connect.EventServiceClient
	audit       logbookv1connect.AuditServiceClient
	projections logbookv1connect.ProjectionServiceClient
}

func (e *env) history() historyClients {
	opt := e.as(e.admin)
	c := e.srv.Client()
	return historyClients{
		events:      logbookv1connect.NewEventServiceClient(c, e.srv.URL, opt),
		audit:       logbookv1connect.NewAuditServiceClient(c, e.srv.URL, opt),
		projections: logbookv1connect.NewProjectionServiceClient(c, e.srv.URL, opt),
	}
}

// mustAppend appends one event carrying msg to stream and returns its
// position.
func mustAppend(t testing.TB, store events.Store, stream string, msg *logbookv1.UnitLabelsSet) uint64 {
	t.Helper()
	ev, err := events.NewEvent(msg, events.Metadata{Principal: "test"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Append(context.Background(), stream, events.Any, ev)
	if err != nil {
		t.Fatal(err)
	}
	return res.LastPosition
}

func labelsSet(i int) *logbookv1.UnitLabelsSet {
	return &logbookv1.UnitLabelsSet{Labels: map[string]string{"n": fmt.Sprint(i)}}
}

func TestReadStreamReadAllHead(t *testing.T) {
	e := newEnv(t)
	c := e.history()
	e.registerUnit("ship1", map[string]string{"site": "north"}, "")
	e.registerUnit("ship2", nil, "")
	for i := range 3 {
		mustAppend(t, e.store, "unit-ship1", labelsSet(i))
	}

	rs := try(c.events.ReadStream(e.ctx, connect.NewRequest(&logbookv1.ReadStreamRequest{Stream: "unit-ship1", FromVersion: 2, Limit: 2}))).must(t).Msg
	if len(rs.Events) != 2 || rs.Events[0].Version != 2 || rs.Events[1].Version != 3 || rs.Events[0].Stream != "unit-ship1" {
		t.Fatalf("ReadStream = %v", rs.Events)
	}
	stored, err := events.FromProto(rs.Events[0])
	if err != nil || stored.Hash != e.readStream("unit-ship1")[1].Hash {
		t.Fatalf("ReadStream's event differs from the log's: %+v, %v", stored, err)
	}

	// Page through the unit events of the whole log.
	var got []uint64
	var from uint64
	for range 10 {
		ra := try(c.events.ReadAll(e.ctx, connect.NewRequest(&logbookv1.ReadAllRequest{
			FromPosition: from, Categories: []string{"unit"}, Limit: 2,
		}))).must(t).Msg
		for _, ev := range ra.Events {
			got = append(got, ev.Position)
		}
		if len(ra.Events) == 0 {
			break
		}
		from = ra.Next
	}
	var want []uint64
	for ev, err := range e.store.ReadAll(e.ctx, 1, events.Filter{Categories: []string{"unit"}}) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ev.Position)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 5 {
		t.Fatalf("ReadAll pages = %v, want %v", got, want)
	}

	head := try(c.events.Head(e.ctx, connect.NewRequest(&logbookv1.HeadRequest{}))).must(t).Msg
	if h, _ := e.store.Head(e.ctx); head.Position != h.Position || !bytes.Equal(head.Hash, h.Hash[:]) {
		t.Fatalf("Head = %d %x, want %d %x", head.Position, head.Hash, h.Position, h.Hash)
	}

	for _, tc := range []struct {
		name string
		call func() error
		code connect.Code
		msg  string
	}{
		{"no stream", func() error {
			_, err := c.events.ReadStream(e.ctx, connect.NewRequest(&logbookv1.ReadStreamRequest{}))
			return err
		}, connect.CodeInvalidArgument, "stream: required"},
		{"bad stream", func() error {
			_, err := c.events.ReadStream(e.ctx, connect.NewRequest(&logbookv1.ReadStreamRequest{Stream: "Unit ship1"}))
			return err
		}, connect.CodeInvalidArgument, "<category>-<id>"},
		{"unknown stream", func() error {
			_, err := c.events.ReadStream(e.ctx, connect.NewRequest(&logbookv1.ReadStreamRequest{Stream: "unit-nope"}))
			return err
		}, connect.CodeNotFound, "unit-nope has no events"},
		{"bad category", func() error {
			_, err := c.events.ReadAll(e.ctx, connect.NewRequest(&logbookv1.ReadAllRequest{Categories: []string{"Unit"}}))
			return err
		}, connect.CodeInvalidArgument, `"Unit" is not a stream category`},
		{"limit too large", func() error {
			_, err := c.events.ReadAll(e.ctx, connect.NewRequest(&logbookv1.ReadAllRequest{Limit: 5000}))
			return err
		}, connect.CodeInvalidArgument, "limit 5000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantContains(t, wantCode(t, tc.call(), tc.code), tc.msg)
		})
	}
}

// collect receives n events from a Follow stream.
func collect(t *testing.T, s *connect.ServerStreamForClient[logbookv1.FollowResponse], n int) []*logbookv1.Event {
	t.Helper()
	var out []*logbookv1.Event
	for len(out) < n && s.Receive() {
		out = append(out, s.Msg().GetEvent())
	}
	if len(out) < n {
		t.Fatalf("Follow ended after %d of %d events: %v", len(out), n, s.Err())
	}
	return out
}

func TestFollowCatchesUpThenGoesLive(t *testing.T) {
	e := newEnv(t)
	c := e.history()
	const before, during = 40, 200
	for i := range before {
		mustAppend(t, e.store, fmt.Sprintf("unit-s%d", i%4), labelsSet(i))
		mustAppend(t, e.store, "other-x", labelsSet(i)) // not followed
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	follow, err := c.events.Follow(ctx, connect.NewRequest(&logbookv1.FollowRequest{FromPosition: 1, Categories: []string{"unit"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	ship2, err := c.events.Follow(ctx, connect.NewRequest(&logbookv1.FollowRequest{FromPosition: 1, Stream: "unit-s2"}))
	if err != nil {
		t.Fatal(err)
	}
	defer ship2.Close()

	// Appends race the catch-up and the switch to live.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range during {
			mustAppend(t, e.store, fmt.Sprintf("unit-s%d", i%4), labelsSet(before+i))
			mustAppend(t, e.store, "other-x", labelsSet(i))
		}
	})
	got := collect(t, follow, before+during)
	wg.Wait()
	var want []uint64
	for ev, err := range e.store.ReadAll(e.ctx, 1, events.Filter{Categories: []string{"unit"}}) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ev.Position)
	}
	if len(want) != before+during {
		t.Fatalf("the log holds %d unit events, want %d", len(want), before+during)
	}
	for i, ev := range got {
		if ev.Position != want[i] {
			t.Fatalf("event %d of Follow is at position %d, want %d (gap or duplicate)", i, ev.Position, want[i])
		}
	}
	for i, ev := range collect(t, ship2, (before+during)/4) {
		if ev.Stream != "unit-s2" || ev.Version != uint64(i+1) {
			t.Fatalf("Follow of unit-s2: event %d is %s v%d", i, ev.Stream, ev.Version)
		}
	}

	// The client going away ends the stream (the server's Close waits for
	// its handlers at cleanup).
	cancel()
	for follow.Receive() {
	}
	if err := follow.Err(); connect.CodeOf(err) != connect.CodeCanceled {
		t.Fatalf("Follow after cancel: %v", err)
	}
}

func TestFollowFromZeroSeesOnlyNewEvents(t *testing.T) {
	e := newEnv(t)
	c := e.history()
	for i := range 5 {
		mustAppend(t, e.store, "unit-old", labelsSet(i))
	}
	head, err := e.store.Head(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	follow, err := c.events.Follow(ctx, connect.NewRequest(&logbookv1.FollowRequest{Types: []string{"logbook.v1.UnitLabelsSet"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	// The call returns once the server has fixed its start.
	pos := mustAppend(t, e.store, "unit-new", labelsSet(0))
	if first := collect(t, follow, 1)[0]; first.Position != pos || first.Position <= head.Position {
		t.Fatalf("Follow from 0 delivered position %d first, want %d (the head was %d before the call)", first.Position, pos, head.Position)
	}

	s, err := c.events.Follow(e.ctx, connect.NewRequest(&logbookv1.FollowRequest{Stream: "unit-a", Categories: []string{"unit"}}))
	if err == nil { // the error may come with the first Receive
		s.Receive()
		err = s.Err()
		s.Close()
	}
	wantContains(t, wantCode(t, err, connect.CodeInvalidArgument), "one or the other")
}

// verify runs Verify and returns its messages.
func verify(t *testing.T, c logbookv1connect.EventServiceClient) []*logbookv1.VerifyResponse {
	t.Helper()
	s, err := c.Verify(context.Background(), connect.NewRequest(&logbookv1.VerifyRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []*logbookv1.VerifyResponse
	for s.Receive() {
		out = append(out, s.Msg())
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(out) < 2 || !out[len(out)-1].Done {
		t.Fatalf("Verify sent %v, want progress then a final message", out)
	}
	return out
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := embedded.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var target uint64
	for i := range 30 {
		msg := labelsSet(i)
		if i == 17 {
			msg = &logbookv1.UnitLabelsSet{Labels: map[string]string{"mark": "corrupt-me"}}
		}
		pos := mustAppend(t, store, fmt.Sprintf("unit-s%d", i%3), msg)
		if i == 17 {
			target = pos
		}
	}
	head, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The intact log.
	c := historyServer(t, store)
	msgs := verify(t, c)
	if first := msgs[0]; first.Head != head.Position || first.Done {
		t.Fatalf("first message %v, want the head %d", first, head.Position)
	}
	if last := msgs[len(msgs)-1]; !last.Ok || last.Position != head.Position || last.Error != "" {
		t.Fatalf("Verify of an intact log ended with %v", last)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// A copy with one byte of one event flipped.
	broken := t.TempDir()
	copyDir(t, dir, broken)
	segs, err := filepath.Glob(filepath.Join(broken, "log", "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment in %s (%v)", broken, err)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("corrupt-me"))
	if i < 0 {
		t.Fatal("the marked event is not in the first segment")
	}
	data[i] ^= 0x20
	if err := os.WriteFile(segs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	bad, err := embedded.Open(ctx, broken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bad.Close() })
	msgs = verify(t, historyServer(t, bad))
	last := msgs[len(msgs)-1]
	if last.Ok || last.BadPosition != target || last.Error == "" || last.Position != target-1 {
		t.Fatalf("Verify of a broken log ended with %v, want the bad position %d", last, target)
	}
	wantContains(t, last.Error, fmt.Sprintf("position %d", target))
}

// historyServer serves the API over store with a fresh host, read models
// and tokens of their own, and returns an admin client of EventService.
func historyServer(t *testing.T, store events.Store) logbookv1connect.EventServiceClient {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	host, err := actors.NewHost(store, actors.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Register(unit.Kind); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	// Tokens and read models on a log of their own: the one under test
	// may be broken.
	aside, err := embedded.Open(ctx, "aside", embedded.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aside.Close() })
	sink, err := projections.OpenSink(ctx, "sqlite://"+filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	runner, err := projections.Start(ctx, aside, sink, readmodel.All(), projections.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close() })
	tokens, err := api.OpenTokens(ctx, aside, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tokens.Close() })
	admin, _, err := tokens.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Deps{
		Store: store, Host: host, Runner: runner, Models: readmodel.Guard(runner, sink),
		Enrolments: fakeEnrolments{}, SigningKey: pub, Tokens: tokens, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return logbookv1connect.NewEventServiceClient(ts.Client(), ts.URL, connect.WithInterceptors(bearerInterceptor(admin)))
}

// copyDir copies the files of src into dst, recursively.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}
