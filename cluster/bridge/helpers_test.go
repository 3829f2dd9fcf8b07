package bridge

import (
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

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// waitLimit only turns a hang into a failure; no test asserts durations.
const waitLimit = 30 * time.Second

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is a control plane under test: store, host, embedded server,
// privileged connection, signing key, credentials.
type env struct {
	t      *testing.T
	store  events.Store
	host   *actors.Host
	srv    *Server
	nc     *nats.Conn
	key    ed25519.PrivateKey
	creds  *MemoryCredentials
	enrol  *Enroller
	bridge *Bridge
}

func mustServer(t *testing.T, creds CredentialStore) *Server {
	t.Helper()
	cfg := DefaultServerConfig()
	cfg.Host, cfg.Port, cfg.Logger = "127.0.0.1", -1, quietLogger()
	srv, err := StartServer(testCtx(t), creds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func mustStore(t *testing.T) events.Store {
	t.Helper()
	st, err := embedded.Open(testCtx(t), "bridge-test", embedded.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func mustHost(t *testing.T, st events.Store) *actors.Host {
	t.Helper()
	h, err := actors.NewHost(st, actors.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Register(unit.Kind); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Logger = quietLogger()
	cfg.Dispatch.AckTimeout = 500 * time.Millisecond
	cfg.Dispatch.BackoffBase = 10 * time.Millisecond
	cfg.Dispatch.BackoffMax = 200 * time.Millisecond
	return cfg
}

// newEnv starts everything but the bridge.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, creds: NewMemoryCredentials()}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.key = priv
	e.store = mustStore(t)
	e.host = mustHost(t, e.store)
	e.srv = mustServer(t, e.creds)
	e.nc, err = e.srv.ConnectInternal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	e.enrol, err = NewEnroller(e.creds, e.pub(), e.srv.AdvertiseURLs(), WithOnEnrol(func(u string) { e.srv.Kick(u) }))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) pub() ed25519.PublicKey { return e.key.Public().(ed25519.PublicKey) }

// start starts a bridge with cfg (testConfig when nil).
func (e *env) start(cfg *Config) *Bridge {
	e.t.Helper()
	c := testConfig()
	if cfg != nil {
		c = *cfg
	}
	c.Enroller = e.enrol
	b, err := Start(testCtx(e.t), e.nc, e.host, e.store, e.key, c)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = b.Close() })
	e.bridge = b
	return b
}

func (e *env) register(name string) {
	e.t.Helper()
	mustRegister(e.t, e.host, name)
}

func mustRegister(t *testing.T, h *actors.Host, name string) {
	t.Helper()
	if _, err := h.Execute(testCtx(t), "unit-"+name, &logbookv1.RegisterUnit{Platform: "linux/arm64"}, events.Metadata{Principal: "test"}); err != nil {
		t.Fatal(err)
	}
}

func mustIssue(t *testing.T, h *actors.Host, name, id string, deadline time.Time, args ...string) {
	t.Helper()
	_, err := h.Execute(testCtx(t), "unit-"+name, &logbookv1.IssueUnitCommand{
		CommandId: id, Method: "shellcommand", Domain: "operatingsystem", Args: args, Deadline: timestamppb.New(deadline),
	}, events.Metadata{Principal: "alice"})
	if err != nil {
		t.Fatal(err)
	}
}

// enrolDirect enrols name without NATS and returns its password.
func (e *env) enrolDirect(name string) string {
	e.t.Helper()
	tok, err := e.enrol.IssueToken(testCtx(e.t), name, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	resp, err := e.enrol.Enrol(testCtx(e.t), &logbookv1.AgentEnrolRequest{Unit: name, Token: tok, PublicKey: pub})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.GetNatsPassword()
}

// asyncErrs collects a connection's asynchronous errors.
type asyncErrs struct {
	ch chan error
}

func newAsyncErrs() *asyncErrs { return &asyncErrs{ch: make(chan error, 16)} }

func (a *asyncErrs) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	select {
	case a.ch <- err:
	default:
	}
}

// next waits for the next async error.
func (a *asyncErrs) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-a.ch:
		return err
	case <-time.After(waitLimit):
		t.Fatal("no asynchronous error arrived")
		return nil
	}
}

// connectUnit connects as unit name with the unit's inbox prefix.
func connectUnit(t *testing.T, url, name, password string, errs *asyncErrs) *nats.Conn {
	t.Helper()
	nc, err := dialUnit(url, name, password, errs)
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func dialUnit(url, name, password string, errs *asyncErrs) (*nats.Conn, error) {
	opts := []nats.Option{nats.CustomInboxPrefix(InboxPrefix(name)), nats.MaxReconnects(0)}
	if password != "" {
		opts = append(opts, nats.UserInfo(name, password))
	}
	if errs != nil {
		opts = append(opts, nats.ErrorHandler(errs.handler))
	}
	return nats.Connect(url, opts...)
}

// fakeAgent answers commands for one unit: it drops the first drop
// requests, then acks (or refuses with refusal) after checking the
// signature with pub.
type fakeAgent struct {
	t        *testing.T
	name     string
	pub      ed25519.PublicKey
	drop     int64
	refusal  string
	received atomic.Int64
	mu       sync.Mutex
	cmds     []*logbookv1.EdgeCommand
	badSig   atomic.Int64
}

func startAgent(t *testing.T, nc *nats.Conn, name string, pub ed25519.PublicKey, drop int64, refusal string) *fakeAgent {
	t.Helper()
	a := &fakeAgent{t: t, name: name, pub: pub, drop: drop, refusal: refusal}
	sub, err := nc.Subscribe(name+".command.>", a.handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return a
}

func (a *fakeAgent) handle(m *nats.Msg) {
	n := a.received.Add(1)
	if n <= a.drop {
		return
	}
	c := new(logbookv1.EdgeCommand)
	ack := &logbookv1.EdgeCommandAck{}
	if err := proto.Unmarshal(m.Data, c); err != nil || !c.VerifySignature(a.pub) || c.GetUnit() != a.name {
		a.badSig.Add(1)
		ack.CommandId, ack.Refusal = c.GetCommandId(), "bad signature"
	} else {
		a.mu.Lock()
		a.cmds = append(a.cmds, c)
		a.mu.Unlock()
		ack.CommandId = c.GetCommandId()
		if a.refusal != "" {
			ack.Refusal = a.refusal
		} else {
			ack.Stored = true
		}
	}
	data, _ := proto.Marshal(ack)
	_ = m.Respond(data)
}

func (a *fakeAgent) commands() []*logbookv1.EdgeCommand {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*logbookv1.EdgeCommand(nil), a.cmds...)
}

// waitEvent waits for the first event of type T in stream that satisfies
// match (nil: any) and returns its payload.
func waitEvent[T proto.Message](t *testing.T, st events.Store, stream string, match func(T) bool) T {
	t.Helper()
	var zero T
	typ := string(zero.ProtoReflect().Descriptor().FullName())
	ctx := testCtx(t)
	for ev, err := range st.Subscribe(ctx, 0, events.Filter{Categories: []string{events.Category(stream)}, Types: []string{typ}}) {
		if err != nil {
			t.Fatalf("waiting for %s in %s: %v", typ, stream, err)
		}
		if ev.Stream != stream {
			continue
		}
		m := zero.ProtoReflect().New().Interface().(T)
		if err := proto.Unmarshal(ev.Data, m); err != nil {
			t.Fatal(err)
		}
		if match == nil || match(m) {
			return m
		}
	}
	t.Fatalf("no %s in %s", typ, stream)
	return zero
}

// streamEvents returns the events of stream (none when it does not exist).
func streamEvents(t *testing.T, st events.Store, stream string) []events.Event {
	t.Helper()
	var out []events.Event
	for ev, err := range st.ReadStream(testCtx(t), stream, 1) {
		if errors.Is(err, events.ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// edgeEvent builds an EdgeEvent of unit name carrying msg.
func edgeEvent(t testing.TB, name, method, domain string, seq uint64, msg proto.Message) *logbookv1.EdgeEvent {
	t.Helper()
	data, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	id := events.NewID()
	return &logbookv1.EdgeEvent{
		Id: id[:], Unit: name, Method: method, Domain: domain, Time: timestamppb.Now(),
		Type: string(msg.ProtoReflect().Descriptor().FullName()), Data: data, Seq: seq,
	}
}

// send publishes ev as a request on its subject and returns the ack.
func send(t *testing.T, nc *nats.Conn, ev *logbookv1.EdgeEvent) *logbookv1.EdgeEventAck {
	t.Helper()
	ack, err := trySend(testCtx(t), nc, ev)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

func trySend(ctx context.Context, nc *nats.Conn, ev *logbookv1.EdgeEvent) (*logbookv1.EdgeEventAck, error) {
	data, err := proto.Marshal(ev)
	if err != nil {
		return nil, err
	}
	subj := fmt.Sprintf("%s.event.%s.%s", ev.GetUnit(), ev.GetMethod(), ev.GetDomain())
	reply, err := nc.RequestWithContext(ctx, subj, data)
	if err != nil {
		return nil, err
	}
	ack := new(logbookv1.EdgeEventAck)
	return ack, proto.Unmarshal(reply.Data, ack)
}
