package agent

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

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

// spoolAt opens the spool of dir with a small compaction size.
func spoolAt(t *testing.T, dir string) *Spool {
	t.Helper()
	s, err := OpenSpool(context.Background(), dir+"/spool", dir+"/spool.acked", testUnit, nil, WithSpoolCompactAt(4096))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func emitN(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.Emit(context.Background(), "reading", "engine", reading(from+i)); err != nil {
			t.Fatal(err)
		}
	}
}

// readSeqs returns the seqs and reading values Read yields from seq from.
func readSeqs(t *testing.T, s *Spool, from uint64) (seqs []uint64, values []float64) {
	t.Helper()
	for e, err := range s.Read(context.Background(), from) {
		if err != nil {
			t.Fatal(err)
		}
		var r logbookv1.AgentReading
		if err := proto.Unmarshal(e.GetData(), &r); err != nil {
			t.Fatal(err)
		}
		seqs, values = append(seqs, e.GetSeq()), append(values, r.GetValue())
	}
	return seqs, values
}

func TestSpoolCompacts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := spoolAt(t, dir)
	defer func() { s.Close() }()
	emitN(t, s, 0, 100)
	if ok, err := s.Compact(ctx); ok || err != nil {
		t.Fatalf("compacted with 100 unacknowledged events: %v, %v", ok, err)
	}
	if err := s.Ack(99); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Compact(ctx); ok || err != nil {
		t.Fatalf("compacted with 1 unacknowledged event: %v, %v", ok, err)
	}
	if err := s.Ack(100); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Compact(ctx); !ok || err != nil {
		t.Fatalf("did not compact a drained spool over its size: %v, %v", ok, err)
	}
	if g := s.Generations(); !slices.Equal(g, []uint64{100}) {
		t.Fatalf("generations %v, want [100]", g)
	}
	if entries, _ := os.ReadDir(dir + "/spool"); len(entries) != 1 {
		t.Fatalf("spool dir holds %d entries after compaction, want 1", len(entries))
	}
	// Seqs go on where they were, also across a restart.
	emitN(t, s, 100, 10)
	if s.Head() != 110 || s.Acked() != 100 || s.Backlog() != 10 {
		t.Fatalf("head %d acked %d backlog %d, want 110, 100, 10", s.Head(), s.Acked(), s.Backlog())
	}
	s.Close()
	s = spoolAt(t, dir)
	if s.Head() != 110 || s.Acked() != 100 {
		t.Fatalf("after reopening: head %d acked %d, want 110 and 100", s.Head(), s.Acked())
	}
	seqs, values := readSeqs(t, s, 101)
	if !slices.Equal(seqs, []uint64{101, 102, 103, 104, 105, 106, 107, 108, 109, 110}) || values[0] != 100 || values[9] != 109 {
		t.Fatalf("read seqs %v values %v", seqs, values)
	}
	if seqs, _ := readSeqs(t, s, 1); len(seqs) != 10 || seqs[0] != 101 {
		t.Fatalf("reading from 1 after compaction: seqs %v, want 101..110", seqs)
	}
}

// TestSpoolCompactionCrashSafe: a compaction cut short at any step leaves
// a spool that opens with every unacknowledged event and resumes.
func TestSpoolCompactionCrashSafe(t *testing.T) {
	ctx := context.Background()
	for _, crash := range []string{"half-made generation", "before deleting the old generation", "half-deleted old generation"} {
		t.Run(crash, func(t *testing.T) {
			dir := t.TempDir()
			s := spoolAt(t, dir)
			emitN(t, s, 0, 100)
			if err := s.Ack(100); err != nil {
				t.Fatal(err)
			}
			old := filepath.Join(dir, "spool", genDirName(0))
			switch crash {
			case "half-made generation":
				if err := os.MkdirAll(filepath.Join(dir, "spool", genDirName(100)+".tmp", "junk"), 0o700); err != nil {
					t.Fatal(err)
				}
			default:
				s.mu.Lock()
				err := s.startGen(ctx, 100)
				s.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
			}
			emitN(t, s, 100, 5) // unacknowledged, in the new generation (or the old)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if crash == "half-deleted old generation" {
				// Delete some of its files, as an interrupted RemoveAll would.
				n := 0
				filepath.WalkDir(old, func(p string, d fs.DirEntry, err error) error {
					if err == nil && d.Type().IsRegular() && n%2 == 0 {
						os.Remove(p)
					}
					n++
					return nil
				})
			}
			s = spoolAt(t, dir)
			defer s.Close()
			if s.Head() != 105 || s.Acked() != 100 {
				t.Fatalf("head %d acked %d, want 105 and 100", s.Head(), s.Acked())
			}
			seqs, values := readSeqs(t, s, s.Acked()+1)
			if !slices.Equal(seqs, []uint64{101, 102, 103, 104, 105}) || values[0] != 100 || values[4] != 104 {
				t.Fatalf("unacknowledged events after the crash: seqs %v values %v", seqs, values)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "spool"))
			if len(entries) != 1 {
				t.Fatalf("spool dir holds %v, want one generation", entries)
			}
		})
	}
}

// TestSpoolStaysBounded: an agent whose events are all acknowledged keeps
// its spool below a few compaction sizes however many it sends.
func TestSpoolStaysBounded(t *testing.T) {
	cp := newFakeCP(t)
	cp.startResponder()
	dir := t.TempDir()
	cfg := testConfig(t, cp, dir)
	cfg.SpoolCompactBytes = 16 << 10
	a := mustOpen(t, cfg)
	ctx := context.Background()
	const n = 2000
	for i := range n {
		if _, err := a.Emit(ctx, "reading", "engine", reading(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "everything acknowledged", func() bool { return a.Spool().Backlog() == 0 })
	waitFor(t, "a compaction", func() bool { return a.Spool().Generations()[0] > 0 })
	wantInOrder(t, cp.events(), n)
	if size, err := dirSize(filepath.Join(dir, "spool")); err != nil || size > 8*cfg.SpoolCompactBytes+1<<20 {
		t.Fatalf("spool is %d bytes (%v) after %d events with compaction at %d", size, err, n, cfg.SpoolCompactBytes)
	}
}
