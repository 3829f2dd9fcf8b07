package edge

// Helpers for tests with real logbook-agent processes: the binary is built
// once per test binary run, the control plane is StartControlPlane's with
// an enrolling bridge, and each agent is an exec.Cmd whose output goes to
// t.Log.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/cluster/bridge"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// agentLimit only turns a hang into a failure; nothing asserts durations.
const agentLimit = 2 * time.Minute

var (
	agentBinOnce sync.Once
	agentBinDir  string
	agentBin     string
	agentBinErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if agentBinDir != "" {
		_ = os.RemoveAll(agentBinDir)
	}
	os.Exit(code)
}

// agentBinary builds ./cmd/logbook-agent once (from the module root) and
// returns the binary's path.
func agentBinary(t *testing.T) string {
	t.Helper()
	agentBinOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			agentBinErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			agentBinErr = fmt.Errorf("not in a module (GOMOD=%q)", gomod)
			return
		}
		if agentBinDir, agentBinErr = os.MkdirTemp("", "logbook-agent-bin-"); agentBinErr != nil {
			return
		}
		agentBin = filepath.Join(agentBinDir, "logbook-agent")
		build := exec.Command("go", "build", "-o", agentBin, "./cmd/logbook-agent")
		build.Dir = filepath.Dir(gomod)
		if out, err := build.CombinedOutput(); err != nil {
			agentBinErr = fmt.Errorf("go build ./cmd/logbook-agent: %w\n%s", err, out)
		}
	})
	if agentBinErr != nil {
		t.Fatal(agentBinErr)
	}
	return agentBin
}

// agentPlane is a ControlPlane whose bridge answers enrolments.
type agentPlane struct {
	*ControlPlane
	Enroller *bridge.Enroller
	cfg      bridge.Config
}

// startAgentPlane starts StartControlPlane's control plane, then replaces
// its bridge by one with an Enroller (which needs the credential store,
// key and URLs StartControlPlane creates).
func startAgentPlane(t *testing.T, ctx context.Context) *agentPlane {
	t.Helper()
	cfg := bridge.DefaultConfig()
	cfg.Dispatch.AckTimeout = 2 * time.Second
	cfg.Dispatch.BackoffBase = 50 * time.Millisecond
	cfg.Dispatch.BackoffMax = 500 * time.Millisecond
	cp, err := StartControlPlane(ctx, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	_ = cp.Bridge.Close()
	cp.Bridge = nil
	p := &agentPlane{ControlPlane: cp}
	if p.Enroller, err = bridge.NewEnroller(cp.Creds, cp.Public(), cp.Server.AdvertiseURLs(),
		bridge.WithOnEnrol(func(u string) { cp.Server.Kick(u) })); err != nil {
		t.Fatal(err)
	}
	p.cfg = cfg
	p.cfg.Enroller = p.Enroller
	p.cfg.Logger = QuietLogger()
	p.startBridge(t, ctx)
	return p
}

// startBridge starts a (new) bridge on the control plane's connection.
func (p *agentPlane) startBridge(t *testing.T, ctx context.Context) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := bridge.Start(sctx, p.NC, p.Host, p.Store, p.Key, p.cfg)
	if err != nil {
		t.Fatalf("start bridge: %v", err)
	}
	p.Bridge = b
}

// stopBridge closes the bridge (intake workers included).
func (p *agentPlane) stopBridge() {
	if p.Bridge != nil {
		_ = p.Bridge.Close()
		p.Bridge = nil
	}
}

// register registers unit name and returns a one-time enrolment token.
func (p *agentPlane) register(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	if _, err := p.Host.Execute(ctx, "unit-"+name, &logbookv1.RegisterUnit{Platform: "linux/amd64"}, events.Metadata{Principal: "test"}); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	tok, err := p.Enroller.IssueToken(ctx, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// issue issues command id to unit name, deadline a minute ahead.
func (p *agentPlane) issue(t *testing.T, ctx context.Context, name, id, method, domain string, args ...string) {
	t.Helper()
	if _, err := p.Host.Execute(ctx, "unit-"+name, &logbookv1.IssueUnitCommand{
		CommandId: id, Method: method, Domain: domain, Args: args,
		Deadline: timestamppb.New(time.Now().Add(time.Minute)),
	}, events.Metadata{Principal: "test"}); err != nil {
		t.Fatalf("issue %s to %s: %v", id, name, err)
	}
}

const (
	typeDelivered = "logbook.v1.UnitCommandDelivered"
	typeSucceeded = "logbook.v1.UnitCommandSucceeded"
	typeFailed    = "logbook.v1.UnitCommandFailed"
	typeExpired   = "logbook.v1.UnitCommandExpired"
)

// outcome is one lifecycle event of one command in a unit's stream.
type outcome struct {
	typ    string
	exit   int32
	output string
	errMsg string
}

// commandEvents reads unit name's stream and returns command id's
// delivered/succeeded/failed/expired events in order.
func (p *agentPlane) commandEvents(t *testing.T, ctx context.Context, name, id string) []outcome {
	t.Helper()
	var out []outcome
	for ev, err := range p.Store.ReadStream(ctx, "unit-"+name, 1) {
		if err != nil {
			t.Fatalf("read unit-%s: %v", name, err)
		}
		var o outcome
		switch ev.Type {
		case typeDelivered:
			m := new(logbookv1.UnitCommandDelivered)
			if err := proto.Unmarshal(ev.Data, m); err != nil {
				t.Fatal(err)
			}
			if m.GetCommandId() != id {
				continue
			}
		case typeSucceeded:
			m := new(logbookv1.UnitCommandSucceeded)
			if err := proto.Unmarshal(ev.Data, m); err != nil {
				t.Fatal(err)
			}
			if m.GetCommandId() != id {
				continue
			}
			o.exit, o.output = m.GetExitCode(), string(m.GetOutput())
		case typeFailed:
			m := new(logbookv1.UnitCommandFailed)
			if err := proto.Unmarshal(ev.Data, m); err != nil {
				t.Fatal(err)
			}
			if m.GetCommandId() != id {
				continue
			}
			o.exit, o.output, o.errMsg = m.GetExitCode(), string(m.GetOutput()), m.GetError()
		case typeExpired:
			m := new(logbookv1.UnitCommandExpired)
			if err := proto.Unmarshal(ev.Data, m); err != nil {
				t.Fatal(err)
			}
			if m.GetCommandId() != id {
				continue
			}
		default:
			continue
		}
		o.typ = ev.Type
		out = append(out, o)
	}
	return out
}

func finishing(evs []outcome) []outcome {
	var out []outcome
	for _, o := range evs {
		if o.typ != typeDelivered {
			out = append(out, o)
		}
	}
	return out
}

// waitFor polls cond until it holds; ctx (agentLimit) turns a hang into a
// failure.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s: %v", what, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// agentProc is one running logbook-agent process.
type agentProc struct {
	cmd  *exec.Cmd
	out  *logWriter
	done chan struct{}
	err  error
}

// startAgent runs the agent binary with args; its output goes to t.Log.
// Cleanup kills it if the test did not stop it.
func startAgent(t *testing.T, label string, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(agentBinary(t), args...)
	w := &logWriter{t: t, prefix: label + ": "}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = 10 * time.Second                       // a lingering child must not hang Wait
	cmd.Env = append(os.Environ(), "LOGBOOK_AGENT_TOKEN=") // flags only
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	a := &agentProc{cmd: cmd, out: w, done: make(chan struct{})}
	go func() { a.err = cmd.Wait(); close(a.done) }()
	t.Cleanup(func() { a.kill(); w.stop() })
	return a
}

// kill SIGKILLs the agent and waits for it.
func (a *agentProc) kill() {
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// stop SIGTERMs the agent and waits for it to exit (cleanly, it should).
func (a *agentProc) stop(t *testing.T, ctx context.Context) {
	t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-ctx.Done():
		a.kill()
		t.Fatalf("agent did not exit after SIGTERM: %v", ctx.Err())
	}
	if a.err != nil {
		t.Errorf("agent exited after SIGTERM with %v", a.err)
	}
}

// exited reports whether the agent exited, and with what.
func (a *agentProc) exited() (bool, error) {
	select {
	case <-a.done:
		return true, a.err
	default:
		return false, nil
	}
}

// logWriter sends whole lines to t.Log until stopped.
type logWriter struct {
	t       *testing.T
	prefix  string
	mu      sync.Mutex
	buf     []byte
	stopped bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *logWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.t.Log(w.prefix + string(w.buf))
	}
	w.stopped = true
}
