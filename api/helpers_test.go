package api_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/channel"
	"github.com/logbook-fleet/logbook/actors/process"
	"github.com/logbook-fleet/logbook/actors/release"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/api"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	_ "github.com/logbook-fleet/logbook/projections/sinks"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
	"github.com/logbook-fleet/logbook/proto/logbook/v1/logbookv1connect"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeEnrolments records the enrolment tokens it issues.
type fakeEnrolments struct{}

func (fakeEnrolments) IssueToken(ctx context.Context, unit string, ttl time.Duration) (string, error) {
	return "enrol-" + unit, nil
}

// env is one test's control plane: an in-memory embedded log, the entity
// host, the read models on SQLite, the tokens and the API on an httptest
// server, with clients authenticated as admin.
type env struct {
	t      testing.TB
	ctx    context.Context
	store  events.Store
	host   *actors.Host
	runner *projections.Runner
	tokens *api.Tokens
	clock  *clock
	srv    *httptest.Server
	admin  string // the admin token
	// Clients authenticated with the admin token.
	units    logbookv1connect.UnitServiceClient
	procs    logbookv1connect.ProcessServiceClient
	releases logbookv1connect.ReleaseServiceClient
	channels logbookv1connect.ChannelServiceClient
	commands logbookv1connect.CommandServiceClient
	tokensC  logbookv1connect.TokenServiceClient
	cluster  logbookv1connect.ClusterServiceClient
}

// newEnv starts a control plane; seed, when given, appends to the log
// before the read models start.
func newEnv(t testing.TB, seed ...func(ctx context.Context, store events.Store)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk := &clock{now: time.Now().UTC()}

	store, err := embedded.Open(ctx, t.TempDir(), embedded.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for _, s := range seed {
		s(ctx, store)
	}
	host, err := actors.NewHost(store, actors.WithLogger(logger), actors.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []actors.Kind{unit.Kind, process.Kind, release.Kind, channel.Kind} {
		if err := host.Register(k); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { host.Close() })
	sink, err := projections.OpenSink(ctx, "sqlite://"+filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	runner, err := projections.Start(ctx, store, sink, readmodel.All(),
		projections.WithLogger(logger), projections.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close() })
	tokens, err := api.OpenTokens(ctx, store, logger, api.WithTokenClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tokens.Close() })

	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Deps{
		Store: store, Host: host, Runner: runner, Models: readmodel.Guard(runner, sink),
		Enrolments: fakeEnrolments{}, NATSURLs: []string{"nats://127.0.0.1:4222"}, SigningKey: pub,
		Tokens: tokens, Logger: logger, Now: clk.Now, NodeID: "node1",
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	admin, created, err := tokens.Bootstrap(ctx, "admin")
	if err != nil || !created {
		t.Fatalf("Bootstrap = %v, %v", created, err)
	}
	e := &env{t: t, ctx: ctx, store: store, host: host, runner: runner, tokens: tokens, clock: clk, srv: ts, admin: admin}
	opt := e.as(admin)
	e.units = logbookv1connect.NewUnitServiceClient(ts.Client(), ts.URL, opt)
	e.procs = logbookv1connect.NewProcessServiceClient(ts.Client(), ts.URL, opt)
	e.releases = logbookv1connect.NewReleaseServiceClient(ts.Client(), ts.URL, opt)
	e.channels = logbookv1connect.NewChannelServiceClient(ts.Client(), ts.URL, opt)
	e.commands = logbookv1connect.NewCommandServiceClient(ts.Client(), ts.URL, opt)
	e.tokensC = logbookv1connect.NewTokenServiceClient(ts.Client(), ts.URL, opt)
	e.cluster = logbookv1connect.NewClusterServiceClient(ts.Client(), ts.URL, opt)
	return e
}

// as returns a client option that sends token (none when empty).
func (e *env) as(token string) connect.ClientOption {
	return connect.WithInterceptors(bearerInterceptor(token))
}

// bearerInterceptor sets the Authorization header of every request.
type bearerInterceptor string

func (b bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if b != "" {
			req.Header().Set("Authorization", "Bearer "+string(b))
		}
		return next(ctx, req)
	}
}

func (b bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if b != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		}
		return conn
	}
}

func (b bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// token creates a token with role and returns it.
func (e *env) token(name, role string) string {
	e.t.Helper()
	_, tok, err := e.tokens.Create(e.ctx, name, role, 0, events.Metadata{Principal: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// waitProjected waits until every read model has applied the log up to
// its current head.
func (e *env) waitProjected() {
	e.t.Helper()
	head, err := e.store.Head(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, name := range []string{readmodel.FleetName, readmodel.ProcessesName, readmodel.CommandsName, readmodel.ReleasesName} {
		for {
			st, _ := e.runner.Status(name)
			if st.Ready && st.Checkpoint >= head.Position {
				break
			}
			select {
			case <-e.ctx.Done():
				e.t.Fatalf("read model %s did not reach position %d: %+v", name, head.Position, st)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// result is a call's value and error, for try(call()).must(t).
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

// must fails the test on the call's error and returns its value.
func (r result[T]) must(t testing.TB) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// wantCode fails the test unless err is a Connect error with code, and
// returns its message.
func wantCode(t testing.TB, err error, code connect.Code) string {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", code)
	}
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("got %v (%v), want %v", got, err, code)
	}
	var ce *connect.Error
	errors.As(err, &ce)
	return ce.Message()
}

// wantContains fails unless s contains every part.
func wantContains(t testing.TB, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%q does not contain %q", s, p)
		}
	}
}

// registerUnit registers a unit through the API.
func (e *env) registerUnit(name string, labels map[string]string, channel string) {
	e.t.Helper()
	try(e.units.RegisterUnit(e.ctx, connect.NewRequest(&logbookv1.RegisterUnitRequest{
		Unit: name, Platform: "linux/arm64", Labels: labels, Channel: channel,
	}))).must(e.t)
}

const gitSHA = "0123456789abcdef0123456789abcdef01234567"

// publishRequest returns a valid publication of version.
func publishRequest(version string) *logbookv1.PublishReleaseRequest {
	return &logbookv1.PublishReleaseRequest{Release: &logbookv1.PublishRelease{
		Version: version,
		Repos:   map[string]string{"github.com/logbook-fleet/logbook": gitSHA},
		Artifacts: []*logbookv1.ReleaseArtifact{{
			Platform: "linux/arm64", Url: "https://example.com/logbook-" + version + ".tar.gz",
			Sha256: strings.Repeat("ab", 32), Size: 1234, Signature: make([]byte, 64),
		}},
	}}
}

// readStream returns the events of stream.
func (e *env) readStream(stream string) []events.Event {
	e.t.Helper()
	var out []events.Event
	for ev, err := range e.store.ReadStream(e.ctx, stream, 1) {
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// appendRaw appends one event of type typ with data to stream.
func appendRaw(ctx context.Context, t testing.TB, store events.Store, stream string, msg proto.Message, data []byte) {
	t.Helper()
	ev, err := events.NewEvent(msg, events.Metadata{Principal: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if data != nil {
		ev.Data = data
	}
	if _, err := store.Append(ctx, stream, events.Any, ev); err != nil {
		t.Fatal(err)
	}
}

// httpJSON posts body as JSON to a Connect procedure with token.
func (e *env) httpJSON(procedure, token, body string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.srv.URL+procedure, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(b)
}
