// Package crash kills the embedded store with SIGKILL while it appends under
// load and checks what a restart recovers: every acknowledged event is there
// exactly once at its acknowledged position, every Append is all-or-nothing,
// positions and versions are dense, the stream index agrees with the log,
// re-sent appends are idempotent and the hash chain verifies.
//
// The appender is this test binary re-executed as a child (see childMain):
// 8 goroutines append single events and batches of up to 16 to shared
// streams (with Any, or Exactly at a possibly stale version) and to streams of
// their own (with Exactly), and report each try and ack on stdout. The parent
// kills it 50-400 ms after a few acks, sometimes leaves junk at the end of the
// log as a torn write would, reopens the store in-process and checks it; the
// log grows across cycles in one directory.
//
// Run it alone with `make test-crash`, or with a fixed seed and more cycles:
//
//	go test -race -count=1 -v ./test/crash/ -seed=42 -cycles=100
package crash

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
)

var (
	seedFlag   = flag.Uint64("seed", 0, "random seed (0: pick one and log it)")
	cyclesFlag = flag.Int("cycles", 0, "kill/recover cycles (0: 24, ending after 20 past 90s; 8 with -short unless CI=true)")
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(childMain(dir))
	}
	os.Exit(m.Run())
}

// want is what the log must hold for a batch.
type want uint8

const (
	wantUnknown want = iota // tried, not acknowledged: present or absent, whole
	wantPresent             // acknowledged, or found after a crash: at loc, forever
	wantAbsent              // rejected, or missing after a crash: never appears
)

// loc is where an event sits in the log.
type loc struct {
	position, version uint64
	hash              events.Hash
}

type batch struct {
	stream string
	ids    []uuid.UUID
	cycle  int
	want   want
	acked  bool
	// first and last are the places of the first and last event when want
	// is wantPresent.
	first, last loc
}

// history is everything every child tried, across cycles.
type history struct {
	batches []*batch
	byID    map[uuid.UUID]*batch
	byKey   map[uuid.UUID]*batch // first id -> batch
}

func newHistory() *history {
	return &history{byID: make(map[uuid.UUID]*batch), byKey: make(map[uuid.UUID]*batch)}
}

func TestCrashRecovery(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x10cb00c))

	// Past minCycles the test stops once it has run for budget, so a
	// loaded machine cannot push it toward the package timeout.
	cycles, minCycles, budget := *cyclesFlag, 20, 90*time.Second
	switch {
	case cycles > 0:
		minCycles, budget = cycles, 0
	case testing.Short() && os.Getenv("CI") != "true":
		cycles, minCycles = 8, 8
	default:
		cycles = 24
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := newHistory()
	start := time.Now()
	ran := 0
	for cycle := 1; cycle <= cycles; cycle++ {
		if cycle > minCycles && time.Since(start) > budget {
			t.Logf("stopping after %d cycles: over the %v budget on a busy machine", ran, budget)
			break
		}
		ran++
		t0 := time.Now()
		stats := runChild(t, exe, dir, cycle, rng, h)
		tail := ""
		if rng.IntN(3) == 0 {
			tail = " + " + tearTail(t, dir, rng)
		}
		t1 := time.Now()
		rec := checkLog(t, dir, cycle, rng, h, true)
		t.Logf("cycle %2d: killed %3dms after %4d acks (%3d conflicts)%s | log %6d events | unacked: %d recovered whole, %d absent, %d retried | child %v, check %v",
			cycle, stats.delay.Milliseconds(), stats.acks, stats.naks, tail, rec.head, rec.recovered, rec.absent, rec.retried,
			t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	}
	// A clean close and reopen keeps everything too.
	rec := checkLog(t, dir, ran+1, rng, h, false)
	acked := 0
	for _, b := range h.batches {
		if b.acked {
			acked++
		}
	}
	t.Logf("%d cycles in %v: %d events in the log, %d batches tried, %d acknowledged",
		ran, time.Since(start).Round(time.Millisecond), rec.head, len(h.batches), acked)
}

type childStats struct {
	acks, naks int
	delay      time.Duration
}

// runChild starts a child on dir, waits until it has acknowledged a few
// appends, kills it with SIGKILL after a random delay and records in h every
// batch it reported.
func runChild(t *testing.T, exe, dir string, cycle int, rng *rand.Rand, h *history) childStats {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childSeedEnv+"="+strconv.FormatUint(rng.Uint64(), 10))
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	minAcks := 1 + rng.IntN(32)
	enough := make(chan struct{})
	done := make(chan error, 1)
	var stats childStats
	go func() {
		done <- readChild(stdout, cycle, h, &stats, minAcks, enough)
	}()

	select {
	case <-enough:
	case err := <-done:
		_ = cmd.Process.Kill()
		werr := cmd.Wait()
		killed = true
		t.Fatalf("cycle %d: child stopped before %d acks (%v, exit: %v); stderr:\n%s", cycle, minAcks, err, werr, stderr.String())
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		killed = true
		t.Fatalf("cycle %d: child made fewer than %d acks in a minute; stderr:\n%s", cycle, minAcks, stderr.String())
	}
	delay := time.Duration(50+rng.IntN(351)) * time.Millisecond
	var rerr error
	readerDone := false
	select {
	case <-time.After(delay):
	case rerr = <-done: // the child stopped by itself: reported below
		readerDone = true
	}
	if err := cmd.Process.Kill(); err != nil && !readerDone {
		t.Fatalf("cycle %d: kill child: %v", cycle, err)
	}
	if !readerDone {
		rerr = <-done
	}
	werr := cmd.Wait()
	killed = true
	if rerr != nil {
		t.Fatalf("cycle %d: %v; child stderr:\n%s", cycle, rerr, stderr.String())
	}
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || exit.Exited() {
		t.Fatalf("cycle %d: child was not killed by the signal (wait: %v); stderr:\n%s", cycle, werr, stderr.String())
	}
	if s := stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") {
		t.Fatalf("cycle %d: child stderr:\n%s", cycle, s)
	}
	stats.delay = delay
	return stats
}

// readChild parses the child's report until EOF, recording batches in h. It
// closes enough once minAcks appends were acknowledged. Only whole lines
// count: a line cut by the kill is ignored.
func readChild(r io.Reader, cycle int, h *history, stats *childStats, minAcks int, enough chan<- struct{}) error {
	br := bufio.NewReaderSize(r, 64<<10)
	ready := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				if !ready {
					return errors.New("child never reported ready")
				}
				return nil
			}
			return err
		}
		f := strings.Fields(strings.TrimSuffix(line, "\n"))
		if len(f) == 0 {
			return fmt.Errorf("empty line from child")
		}
		bad := func(why string) error { return fmt.Errorf("child line %q: %s", strings.TrimSpace(line), why) }
		switch f[0] {
		case "ready":
			ready = true
		case "err":
			return fmt.Errorf("child failed: %s", strings.TrimSpace(line))
		case "try":
			if len(f) < 3 {
				return bad("too short")
			}
			b := &batch{stream: f[1], cycle: cycle}
			for _, s := range f[2:] {
				id, err := uuid.Parse(s)
				if err != nil {
					return bad(err.Error())
				}
				if h.byID[id] != nil {
					return bad("id reused")
				}
				h.byID[id] = b
				b.ids = append(b.ids, id)
			}
			h.byKey[b.ids[0]] = b
			h.batches = append(h.batches, b)
		case "ack":
			if len(f) != 6 {
				return bad("want 6 fields")
			}
			b, err := lookupKey(h, f[1])
			if err != nil {
				return bad(err.Error())
			}
			var n [4]uint64
			for i := range n {
				if n[i], err = strconv.ParseUint(f[2+i], 10, 64); err != nil {
					return bad(err.Error())
				}
			}
			if b.want != wantUnknown {
				return bad("batch already settled")
			}
			b.want, b.acked = wantPresent, true
			b.first = loc{position: n[0], version: n[2]}
			b.last = loc{position: n[1], version: n[3]}
			if b.last.position-b.first.position+1 != uint64(len(b.ids)) {
				return bad(fmt.Sprintf("positions do not span the batch's %d events", len(b.ids)))
			}
			stats.acks++
			if stats.acks == minAcks {
				close(enough)
			}
		case "nak":
			if len(f) != 3 {
				return bad("want 3 fields")
			}
			b, err := lookupKey(h, f[1])
			if err != nil {
				return bad(err.Error())
			}
			if b.want != wantUnknown {
				return bad("batch already settled")
			}
			b.want = wantAbsent
			stats.naks++
		default:
			return bad("unknown report")
		}
	}
}

func lookupKey(h *history, s string) (*batch, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return nil, err
	}
	b := h.byKey[id]
	if b == nil {
		return nil, fmt.Errorf("no batch starts with %s", id)
	}
	return b, nil
}

type recovery struct {
	head                       uint64
	recovered, absent, retried int
}

// checkLog opens the store in dir and checks it against h: dense positions
// and versions, the hash chain, Head and Verify, every batch whole or absent
// as h requires, stream reads matching the global order, and idempotent
// re-appends. It then settles the batches the crash left unknown and, when
// retry is set, re-appends the missing ones as a client would after a lost
// ack.
func checkLog(t *testing.T, dir string, cycle int, rng *rand.Rand, h *history, retry bool) recovery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := embedded.Open(ctx, dir, embedded.WithLogger(log), embedded.WithSegmentSize(segmentSize))
	if err != nil {
		t.Fatalf("cycle %d: reopen after kill: %v", cycle, err)
	}
	defer func() {
		if err := store.Close(); err != nil {
			t.Errorf("cycle %d: close: %v", cycle, err)
		}
	}()
	fatalf := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("cycle %d: "+format, append([]any{cycle}, args...)...)
	}

	// Walk the whole log.
	found := make(map[uuid.UUID]loc)
	streams := make(map[string][]uuid.UUID)
	var (
		pos  uint64
		prev events.Hash
	)
	for ev, err := range store.ReadAll(ctx, 1, events.Filter{}) {
		if err != nil {
			fatalf("read all after position %d: %v", pos, err)
		}
		pos++
		switch {
		case ev.Position != pos:
			fatalf("read all: position %d after %d: positions are not dense", ev.Position, pos-1)
		case ev.PrevHash != prev:
			fatalf("position %d: prev hash %s, want the hash of position %d, %s", pos, ev.PrevHash, pos-1, prev)
		case ev.Hash != events.ChainHash(prev, &ev):
			fatalf("position %d: hash %s does not match its content", pos, ev.Hash)
		}
		prev = ev.Hash
		b := h.byID[ev.ID]
		if b == nil {
			fatalf("position %d: event %s was never appended by anyone", pos, ev.ID)
		}
		if at, dup := found[ev.ID]; dup {
			fatalf("position %d: event %s is also at position %d", pos, ev.ID, at.position)
		}
		switch {
		case ev.Stream != b.stream:
			fatalf("position %d: event %s in stream %s, appended to %s", pos, ev.ID, ev.Stream, b.stream)
		case ev.Type != payloadType || !bytes.Equal(ev.Data, payload(ev.ID)):
			fatalf("position %d: event %s: type %q or data (%d bytes) differ from what was appended", pos, ev.ID, ev.Type, len(ev.Data))
		case ev.Metadata.CorrelationID != b.ids[0].String() || ev.Metadata.Principal != principal:
			fatalf("position %d: event %s: metadata %+v differ from what was appended", pos, ev.ID, ev.Metadata)
		case ev.Version != uint64(len(streams[ev.Stream]))+1:
			fatalf("position %d: %s version %d after version %d: versions are not dense", pos, ev.Stream, ev.Version, len(streams[ev.Stream]))
		}
		found[ev.ID] = loc{position: ev.Position, version: ev.Version, hash: ev.Hash}
		streams[ev.Stream] = append(streams[ev.Stream], ev.ID)
	}

	head, err := store.Head(ctx)
	if err != nil {
		fatalf("head: %v", err)
	}
	if head.Position != pos || head.Hash != prev {
		fatalf("head is %d/%s, the log ends at %d/%s", head.Position, head.Hash, pos, prev)
	}
	verified, err := store.Verify(ctx)
	if err != nil {
		fatalf("verify: %v", err)
	}
	if verified != head {
		fatalf("verify returned %d/%s, head is %d/%s", verified.Position, verified.Hash, head.Position, head.Hash)
	}

	// Every batch is whole or absent, and where h says it must be.
	rec := recovery{head: head.Position}
	var idempotent, missing []*batch
	for _, b := range h.batches {
		n := 0
		for _, id := range b.ids {
			if _, ok := found[id]; ok {
				n++
			}
		}
		if n > 0 && n < len(b.ids) {
			fatalf("append of %d events to %s (tried in cycle %d, acked %v) is torn: %d of its events are in the log", len(b.ids), b.stream, b.cycle, b.acked, n)
		}
		if n == len(b.ids) {
			first := found[b.ids[0]]
			for i, id := range b.ids {
				at := found[id]
				if at.position != first.position+uint64(i) || at.version != first.version+uint64(i) {
					fatalf("append of %d events to %s (cycle %d) is not contiguous: event %d at position %d version %d, first at %d version %d",
						len(b.ids), b.stream, b.cycle, i, at.position, at.version, first.position, first.version)
				}
			}
		}
		switch b.want {
		case wantPresent:
			if n == 0 {
				fatalf("append of %d events to %s acknowledged at positions %d-%d (cycle %d) is lost", len(b.ids), b.stream, b.first.position, b.last.position, b.cycle)
			}
			first, last := found[b.ids[0]], found[b.ids[len(b.ids)-1]]
			if first.position != b.first.position || first.version != b.first.version || last.position != b.last.position || last.version != b.last.version {
				fatalf("append to %s acknowledged at positions %d-%d versions %d-%d (cycle %d) is at positions %d-%d versions %d-%d",
					b.stream, b.first.position, b.last.position, b.first.version, b.last.version, b.cycle, first.position, last.position, first.version, last.version)
			}
			b.last.hash = last.hash
			if rng.IntN(50) == 0 {
				idempotent = append(idempotent, b)
			}
		case wantAbsent:
			if n > 0 {
				fatalf("append to %s that was rejected or lost before (cycle %d) is in the log at position %d", b.stream, b.cycle, found[b.ids[0]].position)
			}
		case wantUnknown:
			if n == 0 {
				b.want = wantAbsent
				rec.absent++
				missing = append(missing, b)
				continue
			}
			b.want = wantPresent
			b.first, b.last = found[b.ids[0]], found[b.ids[len(b.ids)-1]]
			rec.recovered++
			idempotent = append(idempotent, b)
		}
	}

	// The stream index agrees with the log.
	for stream, ids := range streams {
		from := uint64(1)
		if rng.IntN(2) == 0 {
			from = 1 + rng.Uint64N(uint64(len(ids)))
		}
		var got []uuid.UUID
		for ev, err := range store.ReadStream(ctx, stream, from) {
			if err != nil {
				fatalf("read %s from version %d: %v", stream, from, err)
			}
			if at := found[ev.ID]; ev.Version != at.version || ev.Position != at.position {
				fatalf("read %s: event %s at version %d position %d, read all has version %d position %d", stream, ev.ID, ev.Version, ev.Position, at.version, at.position)
			}
			got = append(got, ev.ID)
		}
		if !slices.Equal(got, ids[from-1:]) {
			fatalf("read %s from version %d: %d events, read all has %d (or a different order)", stream, from, len(got), len(ids)-int(from-1))
		}
	}
	owned := 0
	for ev, err := range store.ReadAll(ctx, 1, events.Filter{Categories: []string{"owned"}}) {
		if err != nil {
			fatalf("read all owned: %v", err)
		}
		if events.Category(ev.Stream) != "owned" {
			fatalf("read all owned: position %d is in %s", ev.Position, ev.Stream)
		}
		owned++
	}
	if want := countCategory(streams, "owned"); owned != want {
		fatalf("read all owned: %d events, want %d", owned, want)
	}

	// Re-sending an append that is in the log (a client that never saw its
	// ack retries) returns the original result and appends nothing.
	for _, b := range idempotent {
		res, err := store.Append(ctx, b.stream, events.Exactly(b.first.version-1), batchEvents(b.ids)...)
		if err != nil {
			fatalf("re-append of %d events to %s at version %d (cycle %d, acked %v): %v", len(b.ids), b.stream, b.first.version-1, b.cycle, b.acked, err)
		}
		want := events.AppendResult{FirstVersion: b.first.version, LastVersion: b.last.version, FirstPosition: b.first.position, LastPosition: b.last.position, Hash: b.last.hash}
		if res != want {
			fatalf("re-append to %s (cycle %d): got %+v, want the original %+v", b.stream, b.cycle, res, want)
		}
	}
	if h2, err := store.Head(ctx); err != nil || h2 != head {
		fatalf("head after idempotent re-appends: %v %v, want %d (nothing appended)", h2, err, head.Position)
	}

	// Re-sending an append that was lost appends it once, at the end.
	if retry {
		next := head.Position + 1
		for _, b := range missing {
			res, err := store.Append(ctx, b.stream, events.Any, batchEvents(b.ids)...)
			if err != nil {
				fatalf("retry of lost append to %s: %v", b.stream, err)
			}
			if res.FirstPosition != next || res.LastPosition != next+uint64(len(b.ids))-1 {
				fatalf("retry of lost append of %d events to %s: positions %d-%d, want from %d", len(b.ids), b.stream, res.FirstPosition, res.LastPosition, next)
			}
			next = res.LastPosition + 1
			b.want, b.acked = wantPresent, true
			b.first = loc{position: res.FirstPosition, version: res.FirstVersion}
			b.last = loc{position: res.LastPosition, version: res.LastVersion, hash: res.Hash}
			rec.retried++
		}
	}
	return rec
}

// tearTail appends junk to the last segment of the log, as a write torn by a
// power cut leaves it: zeros (a file extended but not written) or garbage.
// Recovery must cut it off; nothing acknowledged lives there. It knows the
// embedded store's layout: segments are dir/log/*.seg.
func tearTail(t *testing.T, dir string, rng *rand.Rand) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment files in %s/log (%v): update tearTail to the embedded store's layout", dir, err)
	}
	slices.Sort(segs)
	junk := make([]byte, 1+rng.IntN(8192))
	kind := "zeros"
	if rng.IntN(2) == 0 {
		kind = "garbage"
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(junk); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d bytes of %s at the tail", len(junk), kind)
}

func countCategory(streams map[string][]uuid.UUID, category string) int {
	n := 0
	for s, ids := range streams {
		if events.Category(s) == category {
			n += len(ids)
		}
	}
	return n
}

// lockedBuffer is a bytes.Buffer safe for the exec package's copying
// goroutine and the test reading it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
