package embedded

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/logbook-fleet/logbook/events"
)

// gatedFS wraps segment files so that a test can hold their fdatasyncs and
// make them fail.
type gatedFS struct {
	vfs.FS
	mu      sync.Mutex
	gate    chan struct{} // when set, SyncData waits for it to close
	syncing chan struct{} // receives before each gated SyncData waits
	failErr error         // returned by SyncData when set
}

func (fs *gatedFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil || !strings.HasSuffix(name, ".seg") {
		return f, err
	}
	return &gatedFile{File: f, fs: fs}, nil
}

type gatedFile struct {
	vfs.File
	fs *gatedFS
}

func (f *gatedFile) SyncData() error {
	f.fs.mu.Lock()
	gate, syncing, failErr := f.fs.gate, f.fs.syncing, f.fs.failErr
	f.fs.mu.Unlock()
	if gate != nil {
		syncing <- struct{}{}
		<-gate
	}
	if failErr != nil {
		return failErr
	}
	return f.File.SyncData()
}

// hold makes the next fdatasyncs wait until the returned release is
// called; syncing receives once per waiting fdatasync.
func (fs *gatedFS) hold(failErr error) (syncing <-chan struct{}, release func()) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	gate, ch := make(chan struct{}), make(chan struct{}, 16)
	fs.gate, fs.syncing, fs.failErr = gate, ch, failErr
	return ch, func() {
		fs.mu.Lock()
		fs.gate = nil
		fs.mu.Unlock()
		close(gate)
	}
}

// filling returns the number of appends in the filling group.
func (s *Store) fillingLen() int {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	return len(s.filling.reqs)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// While one group syncs, every append that arrives joins the next group,
// and that whole group costs one write and one fdatasync.
func TestAppendsWhileSyncingShareOneSync(t *testing.T) {
	fs := &gatedFS{FS: vfs.NewMem()}
	s := mustOpen(t, "mem", WithFS(fs))
	defer s.Close()
	ctx := context.Background()
	before := s.Stats()

	syncing, release := fs.hold(nil)
	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "unit-first", events.NoStream, newEvents(1, "first")...)
		first <- err
	}()
	<-syncing // the first group is in its fdatasync

	const n = 50
	results := make([]events.AppendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Append(ctx, fmt.Sprintf("unit-%d", i%5), events.Any, newEvents(2, fmt.Sprint(i))...)
		}()
	}
	waitFor(t, "every append to join the next group", func() bool { return s.fillingLen() == n })
	release()
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first append: %v", err)
	}
	seen := make(map[uint64]bool)
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("append %d: %v", i, errs[i])
		}
		for p := results[i].FirstPosition; p <= results[i].LastPosition; p++ {
			if seen[p] {
				t.Fatalf("position %d assigned twice", p)
			}
			seen[p] = true
		}
	}
	for p := uint64(2); p <= 2*n+1; p++ {
		if !seen[p] {
			t.Fatalf("position %d not assigned; positions must be dense after the first append's", p)
		}
	}
	st := s.Stats()
	got := Stats{Appends: st.Appends - before.Appends, Events: st.Events - before.Events,
		Writes: st.Writes - before.Writes, Syncs: st.Syncs - before.Syncs}
	want := Stats{Appends: n + 1, Events: 2*n + 1, Writes: 2, Syncs: 2}
	if got != want {
		t.Fatalf("Stats grew by %+v, want %+v: the %d appends made while the first synced must share one write and one sync", got, want, n)
	}
	if positions := readAllPositions(t, s); len(positions) != 2*n+1 {
		t.Fatalf("ReadAll returned %d events, want %d", len(positions), 2*n+1)
	}
}

// A failed fdatasync fails its group and the group decided after it (whose
// expected versions relied on it), puts the store in the failed state, and
// none of it becomes readable.
func TestFailedSyncFailsItsGroupAndTheNext(t *testing.T) {
	fs := &gatedFS{FS: vfs.NewMem()}
	s := mustOpen(t, "mem", WithFS(fs))
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Append(ctx, "unit-a", events.NoStream, newEvents(1, "durable")...); err != nil {
		t.Fatal(err)
	}

	errSync := errors.New("injected fdatasync failure")
	syncing, release := fs.hold(errSync)
	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "unit-a", events.Exactly(1), newEvents(1, "lost")...)
		first <- err
	}()
	<-syncing
	// Decided after the first: its expected version counts the first's
	// event, which is not durable yet.
	second := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "unit-a", events.Exactly(2), newEvents(1, "depends")...)
		second <- err
	}()
	waitFor(t, "the second append to join the next group", func() bool { return s.fillingLen() == 1 })
	release()
	for name, ch := range map[string]chan error{"first": first, "second": second} {
		if err := <-ch; !errors.Is(err, errSync) {
			t.Errorf("%s append: error %v, want one wrapping %v", name, err, errSync)
		}
	}
	if _, err := s.Append(ctx, "unit-b", events.NoStream, newEvents(1, "later")...); !errors.Is(err, errSync) {
		t.Errorf("append after the failure: error %v, want one wrapping %v", err, errSync)
	}
	if head, _ := s.Head(ctx); head.Position != 1 {
		t.Errorf("Head = %d, want 1: only the durable event", head.Position)
	}
	if positions := readAllPositions(t, s); len(positions) != 1 {
		t.Errorf("ReadAll returned positions %v, want only [1]", positions)
	}
}

// Close waits for groups in flight and refuses appends after it.
func TestCloseWaitsForGroupInFlight(t *testing.T) {
	fs := &gatedFS{FS: vfs.NewMem()}
	dir := filepath.Join("mem", "close")
	s := mustOpen(t, dir, WithFS(fs))
	ctx := context.Background()
	syncing, release := fs.hold(nil)
	appended := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "unit-a", events.NoStream, newEvents(1, "x")...)
		appended <- err
	}()
	<-syncing
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitFor(t, "Close to start", s.closed.Load)
	if _, err := s.Append(ctx, "unit-b", events.NoStream, newEvents(1, "y")...); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("append during Close: error %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a group was syncing", err)
	default:
	}
	release()
	if err := <-appended; err != nil {
		t.Fatalf("append in flight during Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
}
