package sinktest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
)

// CrashConfig configures RunCrash.
type CrashConfig struct {
	// SinkURL names a fresh sink both processes open with
	// projections.OpenSink.
	SinkURL string
	// ChildTest is the name of the test function in the same test binary
	// that calls CrashChild.
	ChildTest string
	// OpenStore opens the durable store in dir (both processes use it,
	// never at the same time).
	OpenStore func(ctx context.Context, dir string) (events.Store, error)
	// ChildSinkURL, when set, is the URL the child uses instead of SinkURL
	// (e.g. with its own application_name, so Settle can find its sessions).
	ChildSinkURL string
	// Settle, when set, runs after each kill and waits until the sink has
	// finished whatever the dead child left in flight (a PostgreSQL backend
	// may still be committing a COMMIT the child sent).
	Settle func(ctx context.Context) error
	// Cycles is the number of kills (default 6); Events the number of
	// events appended before the first one (default 4000; half as many
	// are appended after each kill).
	Cycles, Events int
}

const (
	envCrashURL = "LOGBOOK_SINKTEST_CRASH_URL"
	envCrashDir = "LOGBOOK_SINKTEST_CRASH_DIR"
	crashName   = "crash"
)

// CrashChild runs the counter projection (slow batches, so that a kill
// lands inside one) until the process is killed. It skips unless started
// by RunCrash.
func CrashChild(t *testing.T, openStore func(ctx context.Context, dir string) (events.Store, error)) {
	url, dir := os.Getenv(envCrashURL), os.Getenv(envCrashDir)
	if url == "" || dir == "" {
		t.Skip("runs only as the child of a crash test")
	}
	ctx := context.Background()
	st, err := openStore(ctx, dir)
	if err != nil {
		t.Fatalf("child: open store: %v", err)
	}
	sink, err := projections.OpenSink(ctx, url)
	if err != nil {
		t.Fatalf("child: open sink: %v", err)
	}
	_, err = projections.Start(ctx, st, sink, []projections.Projection{Counter(crashName, 1, CounterOptions{Delay: 3 * time.Millisecond})},
		projections.WithMaxBatch(150), projections.WithLogger(QuietLogger()), projections.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatalf("child: start: %v", err)
	}
	fmt.Println("child: running")
	time.Sleep(2 * time.Minute) // the parent kills us long before
	t.Fatal("child: not killed")
}

// RunCrash appends events, then repeatedly starts a child process running
// the counter projection against cfg.SinkURL and kills it with SIGKILL
// while it commits batches. After each kill the committed read model must
// equal the fold of the log up to the committed checkpoint (nothing lost,
// nothing doubled); at the end a runner in this process catches up and the
// read model must equal the fold of the whole log.
func RunCrash(t *testing.T, cfg CrashConfig) {
	if cfg.Cycles == 0 {
		cfg.Cycles = 6
	}
	if cfg.Events == 0 {
		cfg.Events = 4000
	}
	ctx := ctxT(t)
	dir := t.TempDir()
	var appended int64
	withStore := func(fn func(st events.Store)) {
		t.Helper()
		st, err := cfg.OpenStore(ctx, dir)
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		defer st.Close()
		fn(st)
	}
	appendMore := func(n int) {
		withStore(func(st events.Store) {
			MustAppendCounters(t, ctx, st, 13, n, appended+1)
			appended += int64(n)
		})
	}
	appendMore(cfg.Events)
	sink, err := projections.OpenSink(ctx, cfg.SinkURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()

	childURL := cfg.SinkURL
	if cfg.ChildSinkURL != "" {
		childURL = cfg.ChildSinkURL
	}
	var prev uint64
	midway := 0
	for cycle := 1; cycle <= cfg.Cycles; cycle++ {
		var out bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^"+cfg.ChildTest+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), envCrashURL+"="+childURL, envCrashDir+"="+dir)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(30 * time.Second)
		for {
			cp, err := sink.Checkpoint(ctx, crashName, 1)
			if err == nil && cp > prev {
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("cycle %d: child exited before making progress: %v\n%s", cycle, err, out.String())
			default:
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				<-exited
				t.Fatalf("cycle %d: child made no progress\n%s", cycle, out.String())
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-exited
		if cfg.Settle != nil {
			if err := cfg.Settle(ctx); err != nil {
				t.Fatalf("cycle %d: settle: %v", cycle, err)
			}
		}
		cp, err := sink.Checkpoint(ctx, crashName, 1)
		if err != nil {
			t.Fatal(err)
		}
		if cp < uint64(appended) {
			midway++
		}
		withStore(func(st events.Store) {
			want, err := foldUpTo(ctx, st, cp)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readFoldAt(ctx, sink, crashName, 1, cp)
			if err != nil {
				t.Fatalf("cycle %d: read: %v", cycle, err)
			}
			if d := want.Diff(got); d != "" {
				t.Fatalf("cycle %d: killed at checkpoint %d: %s", cycle, cp, d)
			}
		})
		t.Logf("cycle %d: killed at checkpoint %d of %d; read model matches the log up to it", cycle, cp, appended)
		prev = cp
		appendMore(cfg.Events / 2)
	}
	if midway < cfg.Cycles/2 {
		t.Fatalf("only %d of %d kills landed while the projection was catching up", midway, cfg.Cycles)
	}
	withStore(func(st events.Store) {
		r := mustStart(t, ctx, st, sink, []projections.Projection{Counter(crashName, 1, CounterOptions{})})
		if err := r.WaitReady(ctx, crashName); err != nil {
			t.Fatal(err)
		}
		r.Close()
		mustFold(t, ctx, st, sink, crashName)
	})
}

func foldUpTo(ctx context.Context, st events.Store, pos uint64) (Fold, error) {
	f := Fold{Streams: map[string][2]int64{}}
	for ev, err := range st.ReadAll(ctx, 1, events.Filter{Categories: []string{CounterCategory}}) {
		if err != nil {
			return f, err
		}
		if ev.Position > pos {
			break
		}
		var v wrapperspb.Int64Value
		if err := proto.Unmarshal(ev.Data, &v); err != nil {
			return f, err
		}
		s := f.Streams[ev.Stream]
		f.Streams[ev.Stream] = [2]int64{s[0] + 1, s[1] + v.Value}
		f.Events++
		f.Sum += v.Value
	}
	return f, nil
}

// readFoldAt reads a version's tables whether or not it is current, in a
// transaction that leaves the checkpoint at cp.
func readFoldAt(ctx context.Context, sink projections.Sink, name string, version int, cp uint64) (Fold, error) {
	var f Fold
	err := sink.Apply(ctx, name, version, cp, cp, func(tx projections.Tx) error {
		var err error
		f, err = readFold(ctx, tx)
		return err
	})
	return f, err
}
