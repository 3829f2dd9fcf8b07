package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// The fake control plane: an embedded nats-server with one user per unit
// (allowed to publish <unit>.event.>, subscribe <unit>.command.> and
// _INBOX_<unit>.>, and reply to requests), an enrolment user (DefaultEnrolUser) whose password is
// the one-time token, and a "cp" user for the control plane itself. It
// answers enrolments, stores unit events deduplicated by id (like the
// bridge will), acknowledges them (unless told to drop acks) and sends
// signed commands.

const (
	testUnit     = "ship1"
	testToken    = "good-token"
	testUnitPass = "ship1-secret"
)

// waitLimit only turns a hang into a failure; nothing is asserted about time.
const waitLimit = 30 * time.Second

type fakeCP struct {
	t   testing.TB
	srv *server.Server
	url string
	key ed25519.PrivateKey
	nc  *nats.Conn

	enrolments atomic.Int32
	enrolKey   atomic.Value // ed25519.PublicKey of the last request

	mu         sync.Mutex
	responder  *nats.Subscription
	seen       map[string]bool
	stored     []*logbookv1.EdgeEvent // first arrival of each id, in order
	deliveries int
	heartbeats int
	dropAck    func(e *logbookv1.EdgeEvent, firstTime bool) bool
}

func newFakeCP(t testing.TB) *fakeCP {
	t.Helper()
	return newFakeCPWith(t, fakeCPOptions())
}

// fakeCPOptions are the fake control plane's server options: its users.
func fakeCPOptions() *server.Options {
	unitPerms := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{testUnit + ".event.>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{testUnit + ".command.>", "_INBOX_" + testUnit + ".>"}},
		Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
	opts := &server.Options{
		Host:   "127.0.0.1",
		Port:   -1,
		NoLog:  true,
		NoSigs: true,
		Users: []*server.User{
			{Username: testUnit, Password: testUnitPass, Permissions: unitPerms},
			{Username: DefaultEnrolUser, Password: testToken, Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"logbook.enrol"}},
				Subscribe: &server.SubjectPermission{Allow: []string{DefaultInboxPrefix(testUnit) + ".>", DefaultInboxPrefix("ship2") + ".>"}},
			}},
			{Username: "cp", Password: "cp-secret"},
		},
	}
	return opts
}

// newFakeCPWith starts the fake control plane on a server with opts.
func newFakeCPWith(t testing.TB, opts *server.Options) *fakeCP {
	t.Helper()
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(srv.Shutdown)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cp := &fakeCP{t: t, srv: srv, url: srv.ClientURL(), key: key, seen: map[string]bool{}}
	cp.nc, err = nats.Connect(cp.url, nats.UserInfo("cp", "cp-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.nc.Close)
	_, err = cp.nc.Subscribe("logbook.enrol", func(m *nats.Msg) {
		var req logbookv1.AgentEnrolRequest
		if err := proto.Unmarshal(m.Data, &req); err != nil || req.GetUnit() != testUnit {
			r := nats.NewMsg(m.Reply)
			r.Header.Set("Nats-Service-Error", "unknown unit")
			m.RespondMsg(r)
			return
		}
		cp.enrolments.Add(1)
		cp.enrolKey.Store(ed25519.PublicKey(req.GetPublicKey()))
		data, _ := proto.Marshal(&logbookv1.AgentEnrolResponse{
			NatsUser: testUnit, NatsPassword: testUnitPass, NatsUrls: []string{cp.url},
			ControlPlanePublicKey: key.Public().(ed25519.PublicKey),
		})
		m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	cp.nc.Flush()
	return cp
}

// startResponder acknowledges unit events from now on.
func (cp *fakeCP) startResponder() {
	cp.t.Helper()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.responder != nil {
		return
	}
	sub, err := cp.nc.Subscribe(testUnit+".event.>", cp.onEvent)
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.nc.Flush()
	cp.responder = sub
}

func (cp *fakeCP) stopResponder() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.responder != nil {
		cp.responder.Unsubscribe()
		cp.responder = nil
		cp.nc.Flush()
	}
}

func (cp *fakeCP) onEvent(m *nats.Msg) {
	var e logbookv1.EdgeEvent
	if err := proto.Unmarshal(m.Data, &e); err != nil {
		cp.t.Errorf("undecodable event on %s: %v", m.Subject, err)
		return
	}
	if want := subjectFor(testUnit, "event", e.GetMethod(), e.GetDomain()); m.Subject != want {
		cp.t.Errorf("event on %s, want %s", m.Subject, want)
	}
	cp.mu.Lock()
	if e.GetType() == "logbook.v1.AgentHeartbeat" {
		cp.heartbeats++
		cp.mu.Unlock()
		m.Respond(nil)
		return
	}
	cp.deliveries++
	first := !cp.seen[string(e.GetId())]
	if first {
		cp.seen[string(e.GetId())] = true
		cp.stored = append(cp.stored, &e)
	}
	drop := cp.dropAck != nil && cp.dropAck(&e, first)
	cp.mu.Unlock()
	if drop {
		return
	}
	data, _ := proto.Marshal(&logbookv1.EdgeEventAck{Id: e.GetId(), Seq: e.GetSeq(), Stored: true})
	m.Respond(data)
}

// events returns the stored events (first arrivals, in order).
func (cp *fakeCP) events() []*logbookv1.EdgeEvent {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]*logbookv1.EdgeEvent(nil), cp.stored...)
}

// payloads returns the stored events' payloads of type T.
func payloads[T proto.Message](cp *fakeCP, newT func() T) []T {
	var out []T
	typ := string(newT().ProtoReflect().Descriptor().FullName())
	for _, e := range cp.events() {
		if e.GetType() != typ {
			continue
		}
		m := newT()
		if err := proto.Unmarshal(e.GetData(), m); err != nil {
			panic(err)
		}
		out = append(out, m)
	}
	return out
}

func results(cp *fakeCP) []*logbookv1.AgentCommandResult {
	return payloads(cp, func() *logbookv1.AgentCommandResult { return new(logbookv1.AgentCommandResult) })
}

func refusals(cp *fakeCP) []*logbookv1.AgentCommandRefused {
	return payloads(cp, func() *logbookv1.AgentCommandRefused { return new(logbookv1.AgentCommandRefused) })
}

// waitResult waits for the result of command id.
func (cp *fakeCP) waitResult(id string) *logbookv1.AgentCommandResult {
	cp.t.Helper()
	var got *logbookv1.AgentCommandResult
	waitFor(cp.t, "result of "+id, func() bool {
		for _, r := range results(cp) {
			if r.GetCommandId() == id {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

func (cp *fakeCP) waitRefusal(id string) *logbookv1.AgentCommandRefused {
	cp.t.Helper()
	var got *logbookv1.AgentCommandRefused
	waitFor(cp.t, "refusal of "+id, func() bool {
		for _, r := range refusals(cp) {
			if r.GetCommandId() == id {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

// command returns a command for the test unit, signed, with a deadline in
// a minute.
func (cp *fakeCP) command(id, method, domain string, args ...string) *logbookv1.EdgeCommand {
	c := &logbookv1.EdgeCommand{
		Unit: testUnit, CommandId: id, Method: method, Domain: domain, Args: args,
		Deadline: timestamppb.New(time.Now().Add(time.Minute)), IssuedAt: timestamppb.Now(), IssuedBy: "test",
	}
	c.Sign(cp.key)
	return c
}

// send delivers cmd like the dispatcher: as a request on
// <unit>.command.<method>.<domain>, repeated while no agent listens.
func (cp *fakeCP) send(cmd *logbookv1.EdgeCommand) *logbookv1.EdgeCommandAck {
	cp.t.Helper()
	data, _ := proto.Marshal(cmd)
	subject := subjectFor(testUnit, "command", cmd.GetMethod(), cmd.GetDomain())
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for {
		m, err := cp.nc.RequestWithContext(ctx, subject, data)
		if errors.Is(err, nats.ErrNoResponders) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			cp.t.Fatalf("send %s: %v", cmd.GetCommandId(), err)
		}
		var ack logbookv1.EdgeCommandAck
		if err := proto.Unmarshal(m.Data, &ack); err != nil {
			cp.t.Fatalf("ack of %s: %v", cmd.GetCommandId(), err)
		}
		if ack.GetCommandId() != cmd.GetCommandId() {
			cp.t.Fatalf("ack names %q, want %q", ack.GetCommandId(), cmd.GetCommandId())
		}
		return &ack
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	limit := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(limit) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer collects the agent's logs; they are printed if the test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig(t testing.TB, cp *fakeCP, dir string) Config {
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent logs:\n%s", logs.String())
		}
	})
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.Unit = testUnit
	cfg.Servers = []string{cp.url}
	cfg.Token = testToken
	cfg.Allow = []string{"sh"}
	cfg.HeartbeatInterval = 0
	cfg.AckTimeout = 2 * time.Second
	cfg.RetryMin = 5 * time.Millisecond
	cfg.RetryMax = 100 * time.Millisecond
	cfg.ReconnectWait = 50 * time.Millisecond
	cfg.SyslogPoll = 10 * time.Millisecond
	cfg.ProcessBackoffMin = 5 * time.Millisecond
	cfg.ProcessBackoffMax = 20 * time.Millisecond
	cfg.StopGrace = 5 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

func mustOpen(t testing.TB, cfg Config) *Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	a, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open agent: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func mustClose(t testing.TB, a *Agent) {
	t.Helper()
	if err := a.Close(); err != nil {
		t.Fatalf("close agent: %v", err)
	}
}

// seqs returns the seqs of evs.
func seqs(evs []*logbookv1.EdgeEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.GetSeq()
	}
	return out
}

func reading(i int) *logbookv1.AgentReading {
	return &logbookv1.AgentReading{Sensor: fmt.Sprintf("s%d", i%3), Value: float64(i), Time: timestamppb.Now()}
}
