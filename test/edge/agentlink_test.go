package edge

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/cluster/bridge"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// TestAgentLinkCutRunsEachCommandOnce: the agent's link is cut (a proxy
// between it and NATS drops every connection and refuses new ones) while
// commands are pending, long enough for many redeliveries; when it
// returns, every command runs exactly once: one success each in the log,
// one line each in the file the commands append to.
func TestAgentLinkCutRunsEachCommandOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), agentLimit)
	defer cancel()
	agentBinary(t)
	p := startAgentPlane(t, ctx)
	proxy := startProxy(t, strings.TrimPrefix(p.URL(), "nats://"))
	// Agents are told the proxy's URL at enrolment.
	p.stopBridge()
	var err error
	if p.Enroller, err = bridge.NewEnroller(p.Creds, p.Public(), []string{proxy.URL()},
		bridge.WithOnEnrol(func(u string) { p.Server.Kick(u) })); err != nil {
		t.Fatal(err)
	}
	p.cfg.Enroller = p.Enroller
	p.startBridge(t, ctx)

	const name = "edge4"
	tok := p.register(t, ctx, name)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	a := startAgent(t, name, agentArgs(filepath.Join(dir, "agent"), name, proxy.URL(), "--token", tok, "--allow", "sh")...)
	issueAppend := func(id string) {
		p.issue(t, ctx, name, id, "shellcommand", "sh", "-c", fmt.Sprintf("echo %s >> %s", id, runs))
	}
	finished := func(id string) bool {
		if done, err := a.exited(); done {
			t.Fatalf("agent exited: %v", err)
		}
		return len(finishing(p.commandEvents(t, ctx, name, id))) > 0
	}

	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("cmd-before-%d", i)
		ids = append(ids, id)
		issueAppend(id)
	}
	for _, id := range ids {
		waitFor(t, ctx, id+" to finish", func() bool { return finished(id) })
	}

	proxy.setCut(true)
	t.Log("link cut")
	for i := range 5 {
		id := fmt.Sprintf("cmd-during-%d", i)
		ids = append(ids, id)
		issueAppend(id)
	}
	// The dispatcher retries every 50-500ms (startAgentPlane): a few
	// seconds are many redeliveries. Nothing is timed: this only holds
	// the cut.
	time.Sleep(3 * time.Second)
	proxy.setCut(false)
	t.Log("link restored")
	for _, id := range ids {
		waitFor(t, ctx, id+" to finish", func() bool { return finished(id) })
	}
	a.stop(t, ctx)
	p.stopBridge()

	for _, id := range ids {
		fin := finishing(p.commandEvents(t, ctx, name, id))
		if len(fin) != 1 || fin[0].typ != typeSucceeded {
			t.Errorf("%s: finishing events %+v, want one success", id, fin)
		}
	}
	data, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(data))
	slices.Sort(lines)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Fatalf("commands ran %q, want each of %q once", lines, want)
	}
}

// markerProcesses returns the pids of the live "sleep <marker>" processes.
func markerProcesses(t *testing.T, marker string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Equal(cmdline, []byte("sleep\x00"+marker+"\x00")) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && bytes.HasPrefix(stat[i+1:], []byte(" Z")) {
				continue // a zombie is dead
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// TestAgentKilledLeavesNoCommandRunning: a shellcommand whose program
// started a child of its own (sh waiting for sleep) is running when the
// agent is killed with SIGKILL. The restarted agent kills what is left
// before it reports the command failed, once.
func TestAgentKilledLeavesNoCommandRunning(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc (Linux)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), agentLimit)
	defer cancel()
	agentBinary(t)
	p := startAgentPlane(t, ctx)
	const name = "edge5"
	tok := p.register(t, ctx, name)
	dataDir := filepath.Join(t.TempDir(), "agent")
	marker := fmt.Sprintf("36%d.5", time.Now().UnixNano()%10000) // sleep's argument: names its process
	a := startAgent(t, name+"[1]", agentArgs(dataDir, name, p.URL(), "--token", tok, "--allow", "sh")...)

	const id = "cmd-long"
	p.issue(t, ctx, name, id, "shellcommand", "sh", "-c", "sleep "+marker+"; true")
	waitFor(t, ctx, "the command's sleep to run", func() bool { return len(markerProcesses(t, marker)) == 1 })
	a.kill()
	t.Logf("agent killed; left running: %v", markerProcesses(t, marker))

	b := startAgent(t, name+"[2]", agentArgs(dataDir, name, p.URL(), "--allow", "sh")...)
	waitFor(t, ctx, id+" to finish", func() bool {
		if done, err := b.exited(); done {
			t.Fatalf("restarted agent exited: %v", err)
		}
		return len(finishing(p.commandEvents(t, ctx, name, id))) > 0
	})
	if left := markerProcesses(t, marker); len(left) > 0 {
		t.Fatalf("processes of the command still running after the restart: %v", left)
	}
	b.stop(t, ctx)
	p.stopBridge()
	fin := finishing(p.commandEvents(t, ctx, name, id))
	if len(fin) != 1 || fin[0].typ != typeFailed || fin[0].errMsg != "agent restarted while running" {
		t.Fatalf("%s: finishing events %+v, want one failure \"agent restarted while running\"", id, fin)
	}
}

// TestAgentKilledDoesNotDuplicateProcesses: a supervised process (sh
// waiting for sleep) runs when the agent is killed with SIGKILL; the
// restarted agent kills what is left before it starts the process again,
// so it never runs twice.
func TestAgentKilledDoesNotDuplicateProcesses(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc (Linux)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), agentLimit)
	defer cancel()
	agentBinary(t)
	p := startAgentPlane(t, ctx)
	const name = "edge6"
	tok := p.register(t, ctx, name)
	dataDir := filepath.Join(t.TempDir(), "agent")
	marker := fmt.Sprintf("37%d.5", time.Now().UnixNano()%10000)
	a := startAgent(t, name+"[1]", agentArgs(dataDir, name, p.URL(), "--token", tok, "--allow", "sh")...)

	const id = "cmd-supervise"
	payload := fmt.Sprintf(`{"desired": "running", "restart": "always", "command": ["sh", "-c", "sleep %s; true"]}`, marker)
	if _, err := p.Host.Execute(ctx, "unit-"+name, &logbookv1.IssueUnitCommand{
		CommandId: id, Method: "process", Domain: "sleeper", Payload: []byte(payload),
		Deadline: timestamppb.New(time.Now().Add(time.Minute)),
	}, events.Metadata{Principal: "test"}); err != nil {
		t.Fatal(err)
	}
	var first []int
	waitFor(t, ctx, "the supervised process to run", func() bool {
		first = markerProcesses(t, marker)
		return len(first) == 1
	})
	a.kill()
	t.Logf("agent killed; left running: %v", markerProcesses(t, marker))

	b := startAgent(t, name+"[2]", agentArgs(dataDir, name, p.URL(), "--allow", "sh")...)
	var now []int
	waitFor(t, ctx, "the supervised process to run again", func() bool {
		if done, err := b.exited(); done {
			t.Fatalf("restarted agent exited: %v", err)
		}
		now = markerProcesses(t, marker)
		return len(now) > 0 && !slices.Contains(now, first[0])
	})
	if len(now) != 1 {
		t.Fatalf("after the restart %d copies of the process run (%v), want 1", len(now), now)
	}
	b.stop(t, ctx)
	if left := markerProcesses(t, marker); len(left) > 0 {
		t.Fatalf("processes still running after the agent stopped: %v", left)
	}
	p.stopBridge()
	if fin := finishing(p.commandEvents(t, ctx, name, id)); len(fin) != 1 || fin[0].typ != typeSucceeded {
		t.Fatalf("%s: finishing events %+v, want one success", id, fin)
	}
}
