//go:build linux

package agent

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// startGroup starts "sh -c 'sleep 1000; true'" in its own process group:
// sh waits for sleep, a grandchild of the test in the same group.
func startGroup(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("sh", "-c", "sleep 1000; true")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = killGroup(c.Process.Pid); _ = c.Wait() })
	waitUntil(t, "sleep to start in the group", func() bool {
		m, err := groupMembers(c.Process.Pid)
		return err == nil && len(m) == 2
	})
	return c
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestKillLeftovers(t *testing.T) {
	ctx := context.Background()
	recs := &pidRecords{dir: filepath.Join(t.TempDir(), "running"), logger: slog.New(slog.DiscardHandler)}

	// A recorded group whose leader still runs: killed, whole.
	left := startGroup(t)
	recs.prepare(pidKindCommand, "cmd-1", left).started(left)

	// A recorded group whose leader died: its children are killed.
	orphaned := startGroup(t)
	recs.prepare(pidKindProcess, "proc-1", orphaned).started(orphaned)
	if err := syscall.Kill(orphaned.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = orphaned.Wait()

	// A child recorded before it started, whose agent died before it
	// learnt the pid: found by the token in its environment, with what
	// it started.
	marked := exec.Command("sh", "-c", "sleep 1000; true")
	marked.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	recs.prepare(pidKindCommand, "cmd-2", marked)
	if err := marked.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = killGroup(marked.Process.Pid); _ = marked.Wait() })
	waitUntil(t, "the marked child's sleep", func() bool {
		m, err := groupMembers(marked.Process.Pid)
		return err == nil && len(m) == 2
	})

	// A record whose pid is now another process (other start time): left alone.
	stranger := startGroup(t)
	reused := pidRecord{Kind: pidKindCommand, Name: "cmd-old", PID: stranger.Process.Pid, PGID: stranger.Process.Pid, StartTime: 1, Program: "old"}
	if err := writeJSONAtomic(recs.path(pidKindCommand, "cmd-old"), reused, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := recs.killLeftovers(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*exec.Cmd{left, orphaned, marked} {
		if m, err := groupMembers(c.Process.Pid); err != nil || len(m) != 0 {
			t.Fatalf("group %d: live members %v (%v) after killLeftovers", c.Process.Pid, m, err)
		}
	}
	if m, err := groupMembers(stranger.Process.Pid); err != nil || len(m) != 2 {
		t.Fatalf("a stranger with a recorded pid: members %v (%v), want it untouched", m, err)
	}
	if entries, err := os.ReadDir(recs.dir); err != nil || len(entries) != 0 {
		t.Fatalf("pid records left: %v, %v", entries, err)
	}
	if err := recs.killLeftovers(ctx); err != nil {
		t.Fatalf("second killLeftovers: %v", err)
	}
}

func TestParseProcStat(t *testing.T) {
	line := "4242 (my (odd) prog) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.state != 'S' || st.pgrp != 4240 || st.startTime != 987654 {
		t.Fatalf("parsed %+v", st)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) SS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
	self, err := readProcStat(os.Getpid())
	if err != nil || self.pgrp != syscall.Getpgrp() || self.startTime == 0 {
		t.Fatalf("own stat %+v, %v", self, err)
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("4242 (prog) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000"))
	f.Add([]byte("1 ())) R 0 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseProcStat(b)
	})
}
