package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestDispatcherDeliversSignedCommands(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	e.start(nil)
	nc := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)
	agent := startAgent(t, nc, "ship1", e.pub(), 0, "")

	deadline := time.Now().Add(time.Hour)
	mustIssue(t, e.host, "ship1", "c1", deadline, "uptime")
	mustIssue(t, e.host, "ship1", "c2", deadline, "df")
	waitEvent(t, e.store, "unit-ship1", func(d *logbookv1.UnitCommandDelivered) bool { return d.GetCommandId() == "c2" })
	waitEvent(t, e.store, "unit-ship1", func(d *logbookv1.UnitCommandDelivered) bool { return d.GetCommandId() == "c1" })

	cmds := agent.commands()
	if len(cmds) < 2 || cmds[0].GetCommandId() != "c1" || cmds[1].GetCommandId() != "c2" {
		t.Fatalf("agent got %v; want c1 then c2", cmds)
	}
	for _, c := range cmds {
		if !c.VerifySignature(e.pub()) || c.GetUnit() != "ship1" || !c.GetDeadline().AsTime().Equal(deadline.Truncate(time.Nanosecond)) {
			t.Fatalf("command %v: not signed by the control plane or wrong content", c)
		}
	}
	if agent.badSig.Load() != 0 {
		t.Fatal("the bridge sent a command that does not verify")
	}
}

func TestDispatcherRedeliversUntilAck(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	e.start(nil)
	nc := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)
	const drop = 3
	agent := startAgent(t, nc, "ship1", e.pub(), drop, "")

	mustIssue(t, e.host, "ship1", "c1", time.Now().Add(time.Hour), "uptime")
	waitEvent(t, e.store, "unit-ship1", func(d *logbookv1.UnitCommandDelivered) bool { return d.GetCommandId() == "c1" })
	if n := agent.received.Load(); n < drop+1 {
		t.Fatalf("agent saw %d deliveries; want at least %d (%d dropped, then acked)", n, drop+1, drop)
	}
	if len(agent.commands()) == 0 || agent.commands()[0].GetCommandId() != "c1" {
		t.Fatalf("agent stored %v", agent.commands())
	}
}

func TestDispatcherRecordsRefusal(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	e.start(nil)
	nc := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)
	startAgent(t, nc, "ship1", e.pub(), 0, "method not on the allowlist")

	mustIssue(t, e.host, "ship1", "c1", time.Now().Add(time.Hour), "rm")
	f := waitEvent(t, e.store, "unit-ship1", func(f *logbookv1.UnitCommandFailed) bool { return f.GetCommandId() == "c1" })
	if f.GetExitCode() != -1 || !strings.Contains(f.GetError(), "refused by agent: method not on the allowlist") {
		t.Fatalf("failed event %v", f)
	}
}

func TestDispatcherExpiresPastDeadline(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	b := e.start(nil)
	// No agent: deliveries find no responder until the deadline passes.
	mustIssue(t, e.host, "ship1", "c1", time.Now().Add(time.Second), "uptime")
	x := waitEvent(t, e.store, "unit-ship1", func(x *logbookv1.UnitCommandExpired) bool { return x.GetCommandId() == "c1" })
	if x.GetAt().AsTime().Before(x.GetDeadline().AsTime()) {
		t.Fatalf("expired at %v, before its deadline %v", x.GetAt().AsTime(), x.GetDeadline().AsTime())
	}
	for {
		n, err := b.Pending(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDispatcherExpiresDeliveredWithoutResult(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	e.start(nil)
	nc := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)
	startAgent(t, nc, "ship1", e.pub(), 0, "")
	mustIssue(t, e.host, "ship1", "c1", time.Now().Add(time.Second), "sleep", "3600")
	waitEvent(t, e.store, "unit-ship1", func(d *logbookv1.UnitCommandDelivered) bool { return d.GetCommandId() == "c1" })
	waitEvent(t, e.store, "unit-ship1", func(x *logbookv1.UnitCommandExpired) bool { return x.GetCommandId() == "c1" })
}

func TestRestartResumesPendingDeliveries(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	// Some history before the pending command, finished.
	first := e.start(nil)
	nc := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)
	agent := startAgent(t, nc, "ship1", e.pub(), 0, "")
	mustIssue(t, e.host, "ship1", "old", time.Now().Add(time.Hour))
	waitEvent(t, e.store, "unit-ship1", func(d *logbookv1.UnitCommandDelivered) bool { return d.GetCommandId() == "old" })
	// The agent goes away; a command is issued and stays pending.
	// Drain is asynchronous: wait until the connection is closed, or the
	// draining subscription may still take (and ack) the next command.
	if err := nc.Drain(); err != nil {
		t.Fatal(err)
	}
	for !nc.IsClosed() {
		time.Sleep(5 * time.Millisecond)
	}
	mustIssue(t, e.host, "ship1", "new", time.Now().Add(time.Hour))
	ctx := testCtx(t)
	for {
		n, err := first.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 2 { // "old" (delivered, no result yet) and "new"
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cp, err := first.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = first.Close()
	_ = e.host.Close()

	// A new control plane over the same log.
	e.host = mustHost(t, e.store)
	cfg := testConfig()
	cfg.Dispatch.StartPosition = cp
	second := e.start(&cfg)
	if n, err := second.Pending(ctx); err != nil || n > 2 {
		t.Fatalf("pending after restart: %d, %v", n, err)
	}
	before := len(agent.commands())
	nc2 := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)
	agent2 := startAgent(t, nc2, "ship1", e.pub(), 0, "")
	waitEvent(t, e.store, "unit-ship1", func(d *logbookv1.UnitCommandDelivered) bool { return d.GetCommandId() == "new" })
	if got := agent2.commands(); len(got) == 0 || got[0].GetCommandId() != "new" {
		t.Fatalf("restarted bridge delivered %v; want the pending command", got)
	}
	if len(agent.commands()) != before {
		t.Fatal("the old agent got commands after it left")
	}
}

func TestStartWithoutDeadline(t *testing.T) {
	e := newEnv(t)
	c := testConfig()
	c.Enroller = e.enrol
	b, err := Start(context.Background(), e.nc, e.host, e.store, e.key, c)
	if err != nil {
		t.Fatalf("Start with a ctx without deadline: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDispatcherSharesOneSlot: with a single delivery slot, commands to
// several units issued together all get delivered, each unit's in issue
// order; units that found the slot taken wait for it and are not lost.
func TestDispatcherSharesOneSlot(t *testing.T) {
	e := newEnv(t)
	units := []string{"ship1", "ship2", "ship3", "ship4"}
	agents := map[string]*fakeAgent{}
	for _, u := range units {
		e.register(u)
	}
	cfg := testConfig()
	cfg.Dispatch.MaxInFlight = 1
	e.start(&cfg)
	for _, u := range units {
		nc := connectUnit(t, e.srv.ClientURL(), u, e.enrolDirect(u), nil)
		agents[u] = startAgent(t, nc, u, e.pub(), 0, "")
	}
	deadline := time.Now().Add(time.Hour)
	for _, id := range []string{"c1", "c2", "c3"} {
		for _, u := range units {
			mustIssue(t, e.host, u, id, deadline, "uptime")
		}
	}
	for _, u := range units {
		waitEvent(t, e.store, "unit-"+u, func(d *logbookv1.UnitCommandDelivered) bool { return d.GetCommandId() == "c3" })
		var got []string
		for _, c := range agents[u].commands() {
			got = append(got, c.GetCommandId())
		}
		if strings.Join(got, ",") != "c1,c2,c3" {
			t.Fatalf("%s got %v; want c1, c2, c3 once each, in order", u, got)
		}
	}
}
