package agent

import (
	"context"
	"slices"
	"testing"
	"time"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// wantInOrder checks the control plane stored exactly seqs 1..n, once each,
// in order.
func wantInOrder(t *testing.T, evs []*logbookv1.EdgeEvent, n int) {
	t.Helper()
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if got := seqs(evs); !slices.Equal(got, want) {
		t.Fatalf("stored %d events, seqs %v...; want 1..%d in order", len(got), got[:min(len(got), 20)], n)
	}
}

func TestSpoolDeliversBacklogInOrderWhenTheLinkReturns(t *testing.T) {
	cp := newFakeCP(t) // no responder: nothing is acknowledged
	dir := t.TempDir()
	cfg := testConfig(t, cp, dir)
	cfg.AckTimeout = waitLimit // a slow machine must not cause a resend
	a := mustOpen(t, cfg)
	ctx := context.Background()
	const n = 1000
	for i := range n {
		if _, err := a.Emit(ctx, "reading", "engine", reading(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Spool().Backlog(); got != n {
		t.Fatalf("backlog %d, want %d", got, n)
	}

	cp.startResponder()
	waitFor(t, "backlog delivered", func() bool { return a.Spool().Backlog() == 0 })
	evs := cp.events()
	wantInOrder(t, evs, n)

	// The link goes down again and comes back.
	cp.stopResponder()
	for i := range 100 {
		if _, err := a.Emit(ctx, "reading", "engine", reading(n+i)); err != nil {
			t.Fatal(err)
		}
	}
	cp.startResponder()
	waitFor(t, "second backlog delivered", func() bool { return a.Spool().Backlog() == 0 })
	wantInOrder(t, cp.events(), n+100)
	for i, e := range evs {
		if e.GetUnit() != testUnit || e.GetMethod() != "reading" || e.GetDomain() != "engine" ||
			e.GetType() != "logbook.v1.AgentReading" || len(e.GetId()) != 16 || e.GetId()[6]>>4 != 7 {
			t.Fatalf("event %d: %v", i, e)
		}
	}

	// The checkpoint is durable: a restart sends nothing again.
	mustClose(t, a)
	cfg.Token = ""
	a = mustOpen(t, cfg)
	if a.Spool().Acked() != n+100 || a.Spool().Backlog() != 0 {
		t.Fatalf("after restart: acked %d, backlog %d", a.Spool().Acked(), a.Spool().Backlog())
	}
	if _, err := a.Emit(ctx, "reading", "engine", reading(n+100)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "event after restart", func() bool { return a.Spool().Backlog() == 0 })
	wantInOrder(t, cp.events(), n+101)
	cp.mu.Lock()
	deliveries := cp.deliveries
	cp.mu.Unlock()
	if deliveries != n+101 {
		t.Fatalf("%d deliveries for %d events: something was sent twice", deliveries, n+101)
	}
}

func TestSpoolResendsWhenAcksAreLost(t *testing.T) {
	cp := newFakeCP(t)
	cp.dropAck = func(e *logbookv1.EdgeEvent, first bool) bool { return first && e.GetSeq()%50 == 7 }
	cp.startResponder()
	cfg := testConfig(t, cp, t.TempDir())
	cfg.AckTimeout = 100 * time.Millisecond // each lost ack costs this much
	a := mustOpen(t, cfg)
	const n = 300
	for i := range n {
		if _, err := a.Emit(context.Background(), "reading", "engine", reading(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all acknowledged", func() bool { return a.Spool().Backlog() == 0 })
	wantInOrder(t, cp.events(), n)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.deliveries <= n {
		t.Fatalf("%d deliveries: the lost acks caused no resend", cp.deliveries)
	}
}

func TestSpoolAppendIsDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := OpenSpool(ctx, dir+"/spool", dir+"/spool.acked", testUnit, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := s.Emit(ctx, "reading", "engine", reading(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(4); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenSpool(ctx, dir+"/spool", dir+"/spool.acked", testUnit, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Head() != 10 || s.Acked() != 4 || s.Backlog() != 6 {
		t.Fatalf("head %d acked %d backlog %d; want 10 4 6", s.Head(), s.Acked(), s.Backlog())
	}
	var got []uint64
	for e, err := range s.Read(ctx, s.Acked()+1) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.GetSeq())
	}
	if !slices.Equal(got, []uint64{5, 6, 7, 8, 9, 10}) {
		t.Fatalf("pending %v", got)
	}
}

func TestHeartbeatsBypassTheSpool(t *testing.T) {
	cp := newFakeCP(t)
	cp.startResponder()
	cfg := testConfig(t, cp, t.TempDir())
	cfg.HeartbeatInterval = 20 * time.Millisecond
	a := mustOpen(t, cfg)
	waitFor(t, "heartbeats", func() bool {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		return cp.heartbeats >= 3
	})
	if a.Spool().Head() != 0 {
		t.Fatalf("heartbeats went through the spool: head %d", a.Spool().Head())
	}
}
