package edge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Tests with real logbook-agent processes (built from ./cmd/logbook-agent)
// against the in-process control plane. Every wait is a poll of the log
// bounded by agentLimit, which only turns a hang into a failure.

func agentArgs(dataDir, unitName, url string, extra ...string) []string {
	return append([]string{"--data-dir", dataDir, "--unit", unitName, "--server", url, "--log-level", "debug"}, extra...)
}

func TestAgentProcessRunsCommandOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), agentLimit)
	defer cancel()
	agentBinary(t)
	p := startAgentPlane(t, ctx)
	const name = "edge1"
	tok := p.register(t, ctx, name)
	a := startAgent(t, name, agentArgs(filepath.Join(t.TempDir(), "agent"), name, p.URL(), "--token", tok, "--allow", "echo")...)

	const id = "cmd-echo-1"
	p.issue(t, ctx, name, id, "shellcommand", "echo", "hello")
	waitFor(t, ctx, id+" to finish", func() bool {
		if done, err := a.exited(); done {
			t.Fatalf("agent exited: %v", err)
		}
		return len(finishing(p.commandEvents(t, ctx, name, id))) > 0
	})

	// Settle: stop the agent, then the bridge's intake, so whatever either
	// still had in flight is in the log before counting.
	a.stop(t, ctx)
	p.stopBridge()
	evs := p.commandEvents(t, ctx, name, id)
	fin := finishing(evs)
	if len(fin) != 1 {
		t.Fatalf("%s: %d finishing events %+v, want 1", id, len(fin), fin)
	}
	if fin[0].typ != typeSucceeded || fin[0].exit != 0 || !strings.Contains(fin[0].output, "hello") {
		t.Fatalf("%s ended with %+v, want %s, exit 0, output with \"hello\"", id, fin[0], typeSucceeded)
	}
	t.Logf("%s: %+v", id, evs)
}

func TestAgentKilledAndRestartedRunsOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), agentLimit)
	defer cancel()
	agentBinary(t)
	p := startAgentPlane(t, ctx)
	const name = "edge2"
	tok := p.register(t, ctx, name)
	dataDir := filepath.Join(t.TempDir(), "agent")
	// sleep 1 makes the kill likely to hit a running command (then it ends
	// failed, "agent restarted while running"); either outcome is fine.
	allow := []string{"--allow", "sleep", "--allow", "echo"}
	a := startAgent(t, name+"[1]", agentArgs(dataDir, name, p.URL(), append([]string{"--token", tok}, allow...)...)...)

	const id = "cmd-sleep-1"
	p.issue(t, ctx, name, id, "shellcommand", "sleep", "1")
	waitFor(t, ctx, id+" to be delivered", func() bool {
		if done, err := a.exited(); done {
			t.Fatalf("agent exited: %v", err)
		}
		return len(p.commandEvents(t, ctx, name, id)) > 0
	})
	a.kill()
	t.Logf("agent killed after %s was delivered; log so far: %+v", id, p.commandEvents(t, ctx, name, id))

	// Same data dir, no token: the identity is on disk.
	b := startAgent(t, name+"[2]", agentArgs(dataDir, name, p.URL(), allow...)...)
	waitFor(t, ctx, id+" to finish", func() bool {
		if done, err := b.exited(); done {
			t.Fatalf("restarted agent exited: %v", err)
		}
		return len(finishing(p.commandEvents(t, ctx, name, id))) > 0
	})
	// A second command after the restart: the agent still works, and its
	// result, sent after any spooled result of the first in spool order,
	// is a barrier for the count below.
	const id2 = "cmd-echo-2"
	p.issue(t, ctx, name, id2, "shellcommand", "echo", "again")
	waitFor(t, ctx, id2+" to finish", func() bool {
		if done, err := b.exited(); done {
			t.Fatalf("restarted agent exited: %v", err)
		}
		return len(finishing(p.commandEvents(t, ctx, name, id2))) > 0
	})
	b.stop(t, ctx)
	p.stopBridge()

	fin := finishing(p.commandEvents(t, ctx, name, id))
	if len(fin) != 1 {
		t.Fatalf("%s: %d finishing events %+v, want exactly 1", id, len(fin), fin)
	}
	switch o := fin[0]; {
	case o.typ == typeSucceeded && o.exit == 0:
		t.Logf("%s succeeded before the kill", id)
	case o.typ == typeFailed && o.errMsg == "agent restarted while running":
		t.Logf("%s failed: %s", id, o.errMsg)
	default:
		t.Fatalf("%s ended with %+v; want succeeded, or failed with \"agent restarted while running\"", id, o)
	}
	fin2 := finishing(p.commandEvents(t, ctx, name, id2))
	if len(fin2) != 1 || fin2[0].typ != typeSucceeded || !strings.Contains(fin2[0].output, "again") {
		t.Fatalf("%s: finishing events %+v, want one success with \"again\"", id2, fin2)
	}
}

// TestAgentOfflineSpoolDelivered: 1,000 lines appended to a forwarded log
// while the bridge is down are spooled by the agent (its heartbeats, seen
// by a plain subscription that never answers, report the backlog), survive
// an agent restart, and reach syslog-<unit> once each, in order, when the
// bridge is back.
func TestAgentOfflineSpoolDelivered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), agentLimit)
	defer cancel()
	agentBinary(t)
	p := startAgentPlane(t, ctx)
	const name = "edge3"
	tok := p.register(t, ctx, name)
	dir := t.TempDir()
	dataDir, logPath := filepath.Join(dir, "agent"), filepath.Join(dir, "app.log")
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	syslogFlag := []string{"--syslog", "app=" + logPath, "--heartbeat", "100ms"}
	a := startAgent(t, name+"[1]", agentArgs(dataDir, name, p.URL(), append([]string{"--token", tok}, syslogFlag...)...)...)

	const id = "cmd-syslog-start"
	p.issue(t, ctx, name, id, "syslogforwarding", "app", "start")
	waitFor(t, ctx, id+" to finish", func() bool {
		if done, err := a.exited(); done {
			t.Fatalf("agent exited: %v", err)
		}
		return len(finishing(p.commandEvents(t, ctx, name, id))) > 0
	})
	if fin := finishing(p.commandEvents(t, ctx, name, id)); fin[0].typ != typeSucceeded {
		t.Fatalf("%s ended with %+v", id, fin[0])
	}

	// Offline: no bridge. A plain subscription sees the agent's event
	// requests (and never answers them), which proves the lines are in
	// its spool: events are spooled before they are sent.
	p.stopBridge()
	backlog := make(chan uint64, 16)
	sub, err := p.NC.Subscribe(name+".event.>", func(m *nats.Msg) {
		ev := new(logbookv1.EdgeEvent)
		if proto.Unmarshal(m.Data, ev) != nil || ev.GetType() != "logbook.v1.AgentHeartbeat" {
			return
		}
		hb := new(logbookv1.AgentHeartbeat)
		if proto.Unmarshal(ev.GetData(), hb) != nil {
			return
		}
		select {
		case backlog <- hb.GetSpoolBacklog():
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.NC.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	want := make([]string, n)
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		want[i] = fmt.Sprintf("offline line %04d", i)
		if _, err := fmt.Fprintln(f, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for spooled := uint64(0); spooled < n; {
		select {
		case spooled = <-backlog:
		case <-ctx.Done():
			t.Fatalf("agent reports %d of %d offline lines spooled: %v", spooled, n, ctx.Err())
		}
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}

	// Restart the agent while still offline: the lines must come from the
	// spool on disk.
	a.stop(t, ctx)
	b := startAgent(t, name+"[2]", agentArgs(dataDir, name, p.URL(), syslogFlag...)...)
	p.startBridge(t, ctx)

	readLines := func() []string {
		var lines []string
		for ev, err := range p.Store.ReadStream(ctx, "syslog-"+name, 1) {
			if errors.Is(err, events.ErrStreamNotFound) {
				return nil
			}
			if err != nil {
				t.Fatalf("read syslog-%s: %v", name, err)
			}
			l := new(logbookv1.AgentSyslogLine)
			if err := proto.Unmarshal(ev.Data, l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l.GetLine())
		}
		return lines
	}
	waitFor(t, ctx, "offline lines in syslog-"+name, func() bool {
		if done, err := b.exited(); done {
			t.Fatalf("restarted agent exited: %v", err)
		}
		return len(readLines()) >= n
	})
	// Barrier: a command issued now finishes after the agent sent what was
	// spooled before its result.
	const id2 = "cmd-syslog-stop"
	p.issue(t, ctx, name, id2, "syslogforwarding", "app", "stop")
	waitFor(t, ctx, id2+" to finish", func() bool {
		return len(finishing(p.commandEvents(t, ctx, name, id2))) > 0
	})
	b.stop(t, ctx)
	p.stopBridge()

	lines := readLines()
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("syslog-%s has %d lines:\n%s\nwant %d:\n%s", name, len(lines), strings.Join(lines, "\n"), n, strings.Join(want, "\n"))
	}
}
