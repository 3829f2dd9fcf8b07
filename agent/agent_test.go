package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestEnrolmentAndIdentityReuse(t *testing.T) {
	cp := newFakeCP(t)
	dir := t.TempDir()
	a := mustOpen(t, testConfig(t, cp, dir))
	key := a.Identity().Key
	if got, _ := cp.enrolKey.Load().(ed25519.PublicKey); !bytes.Equal(got, key.Public().(ed25519.PublicKey)) {
		t.Fatalf("enrolled with key %x, agent holds %x", got, key.Public())
	}
	if !a.Identity().ControlPlaneKey.Equal(cp.key.Public()) {
		t.Fatal("agent did not keep the control plane's key")
	}
	mustClose(t, a)
	for _, p := range []string{keyPath(dir), enrolmentPath(dir)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
	}

	cfg := testConfig(t, cp, dir)
	cfg.Token = "" // later starts need none
	a = mustOpen(t, cfg)
	if !a.Identity().Key.Equal(key) {
		t.Fatal("second start made a new key")
	}
	if n := cp.enrolments.Load(); n != 1 {
		t.Fatalf("%d enrolments, want 1", n)
	}
	// The reused credentials work: a command gets through.
	cp.startResponder()
	if ack := cp.send(cp.command("c1", "shellcommand", "sh", "-c", "true")); !ack.GetStored() {
		t.Fatalf("ack %v", ack)
	}
	cp.waitResult("c1")
}

func TestEnrolmentErrors(t *testing.T) {
	cp := newFakeCP(t)
	ctx := context.Background()
	t.Run("no token on first start", func(t *testing.T) {
		cfg := testConfig(t, cp, t.TempDir())
		cfg.Token = ""
		if _, err := Open(ctx, cfg); !errors.Is(err, ErrNoToken) {
			t.Fatalf("got %v, want ErrNoToken", err)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		cfg := testConfig(t, cp, t.TempDir())
		cfg.Token = "wrong"
		if _, err := Open(ctx, cfg); !errors.Is(err, ErrEnrolRejected) {
			t.Fatalf("got %v, want ErrEnrolRejected", err)
		}
	})
	t.Run("rejected by the control plane", func(t *testing.T) {
		cfg := testConfig(t, cp, t.TempDir())
		cfg.Unit = "ship2" // the fake control plane knows only ship1
		if _, err := Open(ctx, cfg); !errors.Is(err, ErrEnrolRejected) {
			t.Fatalf("got %v, want ErrEnrolRejected", err)
		}
	})
	for _, file := range []string{"enrolment.json", "key.pem"} {
		t.Run("corrupt "+file, func(t *testing.T) {
			dir := t.TempDir()
			mustClose(t, mustOpen(t, testConfig(t, cp, dir)))
			path := filepath.Join(dir, "identity", file)
			if err := os.WriteFile(path, []byte("{garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(ctx, testConfig(t, cp, dir))
			var ie *IdentityError
			if !errors.Is(err, ErrCorruptIdentity) || !errors.As(err, &ie) || ie.Path != path {
				t.Fatalf("got %v, want an IdentityError for %s", err, path)
			}
		})
	}
	t.Run("other unit", func(t *testing.T) {
		dir := t.TempDir()
		mustClose(t, mustOpen(t, testConfig(t, cp, dir)))
		cfg := testConfig(t, cp, dir)
		cfg.Unit = "ship9"
		if _, err := Open(ctx, cfg); !errors.Is(err, ErrUnitMismatch) {
			t.Fatalf("got %v, want ErrUnitMismatch", err)
		}
	})
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestCommandRunsOnce(t *testing.T) {
	cp := newFakeCP(t)
	cp.startResponder()
	dir := t.TempDir()
	runs := filepath.Join(t.TempDir(), "runs")
	a := mustOpen(t, testConfig(t, cp, dir))

	cmd := cp.command("once-1", "shellcommand", "sh", "-c", "echo run >> "+runs+"; echo hello; echo oops >&2; exit 3")
	if ack := cp.send(cmd); !ack.GetStored() || ack.GetRefusal() != "" {
		t.Fatalf("ack %v", ack)
	}
	res := cp.waitResult("once-1")
	if res.GetExitCode() != 3 || string(res.GetOutput()) != "hello\noops\n" || res.GetOutputTruncated() || res.GetError() != "" {
		t.Fatalf("result %v", res)
	}
	if !res.GetStartedAt().IsValid() || res.GetFinishedAt().AsTime().Before(res.GetStartedAt().AsTime()) {
		t.Fatalf("result times %v", res)
	}

	// Redelivered: acked again, not run again. A later command is the
	// barrier: its result arrives after any re-run would have begun.
	if ack := cp.send(cmd); !ack.GetStored() {
		t.Fatalf("redelivery ack %v", ack)
	}
	cp.send(cp.command("barrier-1", "shellcommand", "sh", "-c", "true"))
	cp.waitResult("barrier-1")

	// Also after a restart.
	mustClose(t, a)
	cfg := testConfig(t, cp, dir)
	cfg.Token = ""
	mustOpen(t, cfg)
	if ack := cp.send(cmd); !ack.GetStored() {
		t.Fatalf("redelivery after restart: ack %v", ack)
	}
	cp.send(cp.command("barrier-2", "shellcommand", "sh", "-c", "true"))
	cp.waitResult("barrier-2")

	if n := lines(t, runs); n != 1 {
		t.Fatalf("command ran %d times, want 1", n)
	}
	n := 0
	for _, r := range results(cp) {
		if r.GetCommandId() == "once-1" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d results for once-1, want 1", n)
	}
}

func TestCommandRefusals(t *testing.T) {
	cp := newFakeCP(t)
	cp.startResponder()
	mustOpen(t, testConfig(t, cp, t.TempDir()))
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	runs := filepath.Join(t.TempDir(), "runs")
	script := "echo run >> " + runs

	for _, tc := range []struct {
		name   string
		mutate func(c *logbookv1.EdgeCommand) // after signing unless it re-signs
		want   string
	}{
		{"forged", func(c *logbookv1.EdgeCommand) { c.Sign(otherKey) }, "bad signature"},
		{"tampered", func(c *logbookv1.EdgeCommand) { c.Args = []string{"-c", script + "; echo tampered"} }, "bad signature"},
		{"unsigned", func(c *logbookv1.EdgeCommand) { c.Signature, c.KeyId = nil, "" }, "unsigned"},
		{"expired", func(c *logbookv1.EdgeCommand) {
			c.Deadline = timestamppb.New(time.Now().Add(-time.Second))
			c.Sign(cp.key)
		}, "deadline passed"},
		{"other unit", func(c *logbookv1.EdgeCommand) { c.Unit = "ship2"; c.Sign(cp.key) }, "addressed to unit"},
		{"not allowed", func(c *logbookv1.EdgeCommand) { c.Domain = "/bin/sh"; c.Sign(cp.key) }, "not on the allowlist"},
		{"unknown method", func(c *logbookv1.EdgeCommand) { c.Method = "teleport"; c.Sign(cp.key) }, "unknown method"},
		{"bad command id", func(c *logbookv1.EdgeCommand) { c.CommandId = "a b"; c.Sign(cp.key) }, "invalid command id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cp.command("refuse-"+strings.ReplaceAll(tc.name, " ", "-"), "shellcommand", "sh", "-c", script)
			tc.mutate(c)
			ack := cp.send(c)
			if ack.GetStored() || !strings.Contains(ack.GetRefusal(), tc.want) {
				t.Fatalf("ack %v, want a refusal containing %q", ack, tc.want)
			}
			if r := cp.waitRefusal(c.GetCommandId()); !strings.Contains(r.GetReason(), tc.want) {
				t.Fatalf("refusal event %v, want reason containing %q", r, tc.want)
			}
		})
	}
	cp.send(cp.command("barrier", "shellcommand", "sh", "-c", "true"))
	cp.waitResult("barrier")
	if n := lines(t, runs); n != 0 {
		t.Fatalf("refused commands ran %d times", n)
	}
	for _, r := range results(cp) {
		if r.GetCommandId() != "barrier" {
			t.Errorf("a refused command has a result: %v", r)
		}
	}
}

func TestShellTimeoutAndTruncation(t *testing.T) {
	cp := newFakeCP(t)
	cp.startResponder()
	cfg := testConfig(t, cp, t.TempDir())
	cfg.MaxCommandDuration = 300 * time.Millisecond
	mustOpen(t, cfg)

	cp.send(cp.command("slow", "shellcommand", "sh", "-c", "echo started; sleep 60"))
	res := cp.waitResult("slow")
	if res.GetExitCode() != -1 || !strings.Contains(res.GetError(), "timeout") || string(res.GetOutput()) != "started\n" {
		t.Fatalf("result %v, want a timeout with the output so far", res)
	}

	cp.send(cp.command("loud", "shellcommand", "sh", "-c", "i=0; while [ $i -lt 1200 ]; do printf '%0100d\n' $i; i=$((i+1)); done"))
	res = cp.waitResult("loud")
	if res.GetExitCode() != 0 || !res.GetOutputTruncated() || len(res.GetOutput()) != MaxOutput {
		t.Fatalf("exit %d, truncated %v, %d bytes of output; want 0, true, %d",
			res.GetExitCode(), res.GetOutputTruncated(), len(res.GetOutput()), MaxOutput)
	}
	if !bytes.HasPrefix(res.GetOutput(), []byte("0000")) {
		t.Fatalf("output does not start at the beginning: %.40q", res.GetOutput())
	}

	cp.send(cp.command("missing", "shellcommand", "sh", "-c", "exec /nonexistent/program"))
	if res := cp.waitResult("missing"); res.GetExitCode() == 0 {
		t.Fatalf("result %v, want a failure", res)
	}
}
