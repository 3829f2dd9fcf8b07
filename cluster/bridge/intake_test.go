package bridge

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors/process"
	"github.com/logbook-fleet/logbook/actors/unit"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestIntakeIsIdempotent(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	e.start(nil)
	nc := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)

	ev := edgeEvent(t, "ship1", "sensor", "engine", 1, &logbookv1.AgentReading{Sensor: "rpm", Value: 1500})
	for i := range 3 {
		ack := send(t, nc, ev)
		if !ack.GetStored() || ack.GetError() != "" || !bytes.Equal(ack.GetId(), ev.GetId()) || ack.GetSeq() != 1 {
			t.Fatalf("send %d: ack %v", i, ack)
		}
	}
	got := streamEvents(t, e.store, "readings-ship1")
	if len(got) != 1 || !bytes.Equal(got[0].ID[:], ev.GetId()) || got[0].Type != "logbook.v1.AgentReading" || !bytes.Equal(got[0].Data, ev.GetData()) {
		t.Fatalf("readings-ship1 = %v; want the reading once, under the agent's id", got)
	}
	if got[0].Metadata.Principal != UnitPrincipal("ship1") {
		t.Fatalf("principal %q", got[0].Metadata.Principal)
	}

	line := edgeEvent(t, "ship1", "syslogforwarding", "nginx", 2, &logbookv1.AgentSyslogLine{Path: "/var/log/nginx/error.log", Line: "boom"})
	if ack := send(t, nc, line); !ack.GetStored() {
		t.Fatalf("syslog line: %v", ack)
	}
	if got := streamEvents(t, e.store, "syslog-ship1"); len(got) != 1 {
		t.Fatalf("syslog-ship1 has %d events", len(got))
	}
}

func TestIntakeKeepsPerUnitOrder(t *testing.T) {
	e := newEnv(t)
	const units, perUnit = 3, 100
	conns := make([]*nats.Conn, units)
	for u := range units {
		name := fmt.Sprintf("ship%d", u)
		e.register(name)
		conns[u] = connectUnit(t, e.srv.ClientURL(), name, e.enrolDirect(name), nil)
	}
	e.start(nil)

	// Pipeline: every event published before any ack is awaited.
	type sent struct {
		inbox *nats.Subscription
		evs   []*logbookv1.EdgeEvent
	}
	all := make([]sent, units)
	for u := range units {
		name := fmt.Sprintf("ship%d", u)
		sub, err := conns[u].SubscribeSync(InboxPrefix(name) + ".acks")
		if err != nil {
			t.Fatal(err)
		}
		all[u].inbox = sub
		for i := range perUnit {
			ev := edgeEvent(t, name, "sensor", "engine", uint64(i+1), &logbookv1.AgentReading{Sensor: "rpm", Value: float64(i)})
			all[u].evs = append(all[u].evs, ev)
			data, _ := proto.Marshal(ev)
			if err := conns[u].PublishRequest(name+".event.sensor.engine", InboxPrefix(name)+".acks", data); err != nil {
				t.Fatal(err)
			}
		}
	}
	for u := range units {
		for range perUnit {
			m, err := all[u].inbox.NextMsg(waitLimit)
			if err != nil {
				t.Fatal(err)
			}
			ack := new(logbookv1.EdgeEventAck)
			if err := proto.Unmarshal(m.Data, ack); err != nil || !ack.GetStored() {
				t.Fatalf("ack %v, %v", ack, err)
			}
		}
		got := streamEvents(t, e.store, fmt.Sprintf("readings-ship%d", u))
		if len(got) != perUnit {
			t.Fatalf("unit %d: %d readings stored, want %d", u, len(got), perUnit)
		}
		for i, ev := range got {
			if !bytes.Equal(ev.ID[:], all[u].evs[i].GetId()) {
				t.Fatalf("unit %d: reading %d is out of order", u, i)
			}
		}
	}
}

func TestIntakeRecordsResults(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	e.start(nil)
	nc := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)
	startAgent(t, nc, "ship1", e.pub(), 0, "")
	deadline := time.Now().Add(time.Hour)
	mustIssue(t, e.host, "ship1", "ok", deadline, "uptime")
	mustIssue(t, e.host, "ship1", "bad", deadline, "false")
	mustIssue(t, e.host, "ship1", "no", deadline, "reboot")

	big := bytes.Repeat([]byte("x"), unit.MaxOutputBytes+100)
	res := edgeEvent(t, "ship1", "shellcommand", "operatingsystem", 1, &logbookv1.AgentCommandResult{CommandId: "ok", Output: big})
	for range 2 { // the second is a redelivery: acked, recorded once
		if ack := send(t, nc, res); !ack.GetStored() {
			t.Fatalf("result ack %v", ack)
		}
	}
	s := waitEvent(t, e.store, "unit-ship1", func(s *logbookv1.UnitCommandSucceeded) bool { return s.GetCommandId() == "ok" })
	if !s.GetOutputTruncated() || len(s.GetOutput()) != unit.MaxOutputBytes {
		t.Fatalf("output %d bytes, truncated %v; want cut at %d", len(s.GetOutput()), s.GetOutputTruncated(), unit.MaxOutputBytes)
	}
	fail := edgeEvent(t, "ship1", "shellcommand", "operatingsystem", 2, &logbookv1.AgentCommandResult{CommandId: "bad", ExitCode: 1, Output: []byte("nope")})
	if ack := send(t, nc, fail); !ack.GetStored() {
		t.Fatalf("result ack %v", ack)
	}
	f := waitEvent(t, e.store, "unit-ship1", func(f *logbookv1.UnitCommandFailed) bool { return f.GetCommandId() == "bad" })
	if f.GetExitCode() != 1 {
		t.Fatalf("failed %v", f)
	}
	ref := edgeEvent(t, "ship1", "shellcommand", "operatingsystem", 3, &logbookv1.AgentCommandRefused{CommandId: "no", Reason: "not allowed"})
	if ack := send(t, nc, ref); !ack.GetStored() {
		t.Fatalf("refusal ack %v", ack)
	}
	waitEvent(t, e.store, "unit-ship1", func(f *logbookv1.UnitCommandFailed) bool {
		return f.GetCommandId() == "no" && strings.Contains(f.GetError(), "not allowed")
	})
	n := 0
	for _, ev := range streamEvents(t, e.store, "unit-ship1") {
		if ev.Type == "logbook.v1.UnitCommandSucceeded" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d UnitCommandSucceeded events, want 1", n)
	}
	unknown := edgeEvent(t, "ship1", "shellcommand", "operatingsystem", 4, &logbookv1.AgentCommandResult{CommandId: "never-issued"})
	if ack := send(t, nc, unknown); ack.GetStored() || !strings.Contains(ack.GetError(), "unknown command") {
		t.Fatalf("result for an unknown command: %v", ack)
	}
}

func TestIntakeRejectsMalformedEvents(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	e.start(nil)
	// The control plane's own connection may publish anywhere: it can
	// test what an agent could not even send.
	nc := e.nc
	good := func() *logbookv1.EdgeEvent {
		return edgeEvent(t, "ship1", "sensor", "engine", 1, &logbookv1.AgentReading{Sensor: "rpm", Value: 1})
	}
	for name, c := range map[string]struct {
		mutate  func(*logbookv1.EdgeEvent)
		subject string
		want    string
	}{
		"other unit":   {func(ev *logbookv1.EdgeEvent) { ev.Unit = "ship2" }, "ship1.event.sensor.engine", "unit"},
		"other method": {func(ev *logbookv1.EdgeEvent) {}, "ship1.event.other.engine", "subject says"},
		"short id":     {func(ev *logbookv1.EdgeEvent) { ev.Id = ev.Id[:3] }, "", "16"},
		"zero id":      {func(ev *logbookv1.EdgeEvent) { ev.Id = make([]byte, 16) }, "", "zero id"},
		"unknown type": {func(ev *logbookv1.EdgeEvent) { ev.Type = "evil.Type" }, "", "unknown payload type"},
		"bad payload":  {func(ev *logbookv1.EdgeEvent) { ev.Data = []byte{0xff, 0xff} }, "", "payload"},
		"unregistered": {func(ev *logbookv1.EdgeEvent) { ev.Unit = "ghost" }, "ghost.event.sensor.engine", "not registered"},
	} {
		ev := good()
		c.mutate(ev)
		subj := c.subject
		if subj == "" {
			subj = "ship1.event.sensor.engine"
		}
		data, _ := proto.Marshal(ev)
		u, _ := ParseSubject(subj)
		inbox := InboxPrefix(u.Unit) + "." + nats.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.PublishRequest(subj, inbox, data); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(waitLimit)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ack := new(logbookv1.EdgeEventAck)
		_ = proto.Unmarshal(m.Data, ack)
		if ack.GetStored() || !strings.Contains(ack.GetError(), c.want) {
			t.Errorf("%s: ack %v; want a rejection mentioning %q", name, ack, c.want)
		}
		_ = sub.Unsubscribe()
	}
	if got := streamEvents(t, e.store, "readings-ship1"); len(got) != 0 {
		t.Fatalf("rejected events were stored: %v", got)
	}
}

func TestIntakeRepliesOnlyToTheUnitsInbox(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	e.register("ship2")
	e.start(nil)
	// ship2 listens for commands; a reply aimed at its command subject must not come.
	nc2 := connectUnit(t, e.srv.ClientURL(), "ship2", e.enrolDirect("ship2"), nil)
	cmds, err := nc2.SubscribeSync("ship2.command.>")
	if err != nil {
		t.Fatal(err)
	}
	_ = nc2.Flush()
	nc1 := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)
	bad := edgeEvent(t, "ship1", "sensor", "engine", 1, &logbookv1.AgentReading{Sensor: "rpm"})
	data, _ := proto.Marshal(bad)
	if err := nc1.PublishRequest("ship1.event.sensor.engine", "ship2.command.x.y", data); err != nil {
		t.Fatal(err)
	}
	// A well-formed event after it is acked, so the bad one was handled.
	if ack := send(t, nc1, edgeEvent(t, "ship1", "sensor", "engine", 2, &logbookv1.AgentReading{Sensor: "rpm"})); !ack.GetStored() {
		t.Fatalf("ack %v", ack)
	}
	// Whatever the bridge published before that ack has reached nc2 once
	// a round trip on nc2 completes.
	if err := nc2.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := cmds.NextMsg(10 * time.Millisecond); err == nil {
		t.Fatalf("the bridge published %q on ship2's command subject", m.Data)
	}
	if got := streamEvents(t, e.store, "readings-ship1"); len(got) != 1 {
		t.Fatalf("%d readings stored, want only the well-formed one", len(got))
	}
}

func TestIntakeTracksConnectivity(t *testing.T) {
	e := newEnv(t)
	e.register("ship1")
	cfg := testConfig()
	cfg.Intake.HeartbeatTimeout = 300 * time.Millisecond
	b := e.start(&cfg)
	nc := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)
	hb := edgeEvent(t, "ship1", "agent", "heartbeat", 1, &logbookv1.AgentHeartbeat{AgentVersion: "1.2.3", Release: "2026.11.1"})
	if ack := send(t, nc, hb); !ack.GetStored() {
		t.Fatalf("heartbeat ack %v", ack)
	}
	c := waitEvent(t, e.store, "unit-ship1", func(*logbookv1.UnitConnected) bool { return true })
	if c.GetAgentVersion() != "1.2.3" || c.GetSessionId() == "" {
		t.Fatalf("connected %v", c)
	}
	waitEvent(t, e.store, "unit-ship1", func(r *logbookv1.UnitReleaseReported) bool { return r.GetRelease() == "2026.11.1" })
	// (No UnitHeartbeatReceived: the connection just set last_seen, and
	// heartbeats within unit.HeartbeatResolution record nothing.)
	// Silence: the session ends.
	d := waitEvent(t, e.store, "unit-ship1", func(*logbookv1.UnitDisconnected) bool { return true })
	if d.GetSessionId() != c.GetSessionId() {
		t.Fatalf("disconnected session %q, connected %q", d.GetSessionId(), c.GetSessionId())
	}
	if b.Connected("ship1") {
		t.Fatal("still counted as connected")
	}
}

func TestIntakeRoutesProcessStatusToTheProcess(t *testing.T) {
	e := newEnv(t)
	if err := e.host.Register(process.Kind); err != nil {
		t.Fatal(err)
	}
	e.register("ship1")
	e.start(nil)
	nc := connectUnit(t, e.srv.ClientURL(), "ship1", e.enrolDirect("ship1"), nil)

	running := &logbookv1.ReportProcessStatus{Status: logbookv1.ProcessStatus_PROCESS_STATUS_RUNNING, RestartCount: 2}
	if ack := send(t, nc, edgeEvent(t, "ship1", "process", "nginx", 1, running)); !ack.GetStored() {
		t.Fatalf("process status: %v", ack)
	}
	got := streamEvents(t, e.store, "process-ship1.process.nginx")
	if len(got) != 1 || got[0].Type != "logbook.v1.ProcessStatusReported" {
		t.Fatalf("process-ship1.process.nginx = %v, want one ProcessStatusReported", got)
	}
	// A status the process aggregate refuses is rejected for good, not retried.
	bad := &logbookv1.ReportProcessStatus{}
	if ack := send(t, nc, edgeEvent(t, "ship1", "process", "nginx", 2, bad)); ack.GetStored() || ack.GetError() == "" {
		t.Fatalf("invalid process status: %v, want a rejection", ack)
	}
}
