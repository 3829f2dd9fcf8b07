package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/channel"
	"github.com/logbook-fleet/logbook/actors/process"
	"github.com/logbook-fleet/logbook/actors/release"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/api"
	"github.com/logbook-fleet/logbook/cluster/bridge"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	_ "github.com/logbook-fleet/logbook/projections/sinks"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// e2e is a real control plane (embedded log, entity host with the real
// kinds, SQLite read models, the real API) behind an httptest server, and
// the CLI pointed at it.
type e2e struct {
	t      *testing.T
	ctx    context.Context
	url    string
	admin  string
	data   string
	store  events.Store
	host   *actors.Host
	runner *projections.Runner
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	data := t.TempDir()

	store, err := embedded.Open(ctx, filepath.Join(data, "log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	host, err := actors.NewHost(store, actors.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []actors.Kind{unit.Kind, process.Kind, release.Kind, channel.Kind} {
		if err := host.Register(k); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { host.Close() })
	sink, err := projections.OpenSink(ctx, "sqlite://"+filepath.Join(data, "readmodels.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	runner, err := projections.Start(ctx, store, sink, readmodel.All(), projections.WithLogger(logger), projections.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close() })
	tokens, err := api.OpenTokens(ctx, store, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tokens.Close() })
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	natsURLs := []string{"nats://127.0.0.1:4250"}
	enroller, err := bridge.NewEnroller(bridge.NewMemoryCredentials(), pub, natsURLs)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Deps{
		Store: store, Host: host, Runner: runner, Models: readmodel.Guard(runner, sink),
		Enrolments: enroller, NATSURLs: natsURLs, SigningKey: pub, Tokens: tokens, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	admin, _, err := tokens.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, adminTokenFile), []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{readmodel.FleetName, readmodel.CommandsName, readmodel.AuditName} {
		if err := runner.WaitReady(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	return &e2e{t: t, ctx: ctx, url: ts.URL, admin: admin, data: data, store: store, host: host, runner: runner}
}

// with returns e reporting to t (a subtest).
func (e *e2e) with(t *testing.T) *e2e {
	c := *e
	c.t = t
	return &c
}

// run runs the CLI as the admin and returns stdout, stderr and the error.
func (e *e2e) run(args ...string) (string, string, error) {
	return e.runAs(e.admin, args...)
}

func (e *e2e) runAs(token string, args ...string) (string, string, error) {
	e.t.Helper()
	var out, diag bytes.Buffer
	full := append([]string{"--server", e.url}, args...)
	if token != "" {
		full = append([]string{"--token", token}, full...)
	}
	err := Run(e.ctx, full, &out, &diag)
	return out.String(), diag.String(), err
}

// ok runs the CLI and fails the test unless it succeeds; it returns stdout.
func (e *e2e) ok(args ...string) string {
	e.t.Helper()
	out, diag, err := e.run(args...)
	if err != nil {
		var msg bytes.Buffer
		PrintError(&msg, err)
		e.t.Fatalf("logbook %s: %v\nstdout:\n%s\nstderr:\n%s%s", strings.Join(args, " "), err, out, diag, msg.String())
	}
	return out
}

// contains fails unless out contains every want.
func (e *e2e) contains(what, out string, wants ...string) {
	e.t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			e.t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// caughtUp waits until every read model has applied the log up to its
// current head, so that lists show what was just written.
func (e *e2e) caughtUp() {
	e.t.Helper()
	head, err := e.store.Head(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		behind := false
		for _, st := range e.runner.Statuses() {
			if st.Checkpoint < head.Position {
				behind = true
			}
		}
		if !behind {
			return
		}
		select {
		case <-e.ctx.Done():
			e.t.Fatal(e.ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// position returns the log's head position.
func (e *e2e) position() uint64 {
	e.t.Helper()
	head, err := e.store.Head(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return head.Position
}

// writeSigningKey writes a PEM ed25519 key as openssl genpkey would.
func writeSigningKey(t *testing.T, path string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestE2E(t *testing.T) {
	e := startE2E(t)
	dir := t.TempDir()

	t.Run("auth", func(t *testing.T) {
		e := e.with(t)
		e.contains("whoami", e.ok("whoami"), "admin", "--token")
		out, _, err := Run2(e.ctx, "whoami", "--server", e.url, "--data-dir", e.data)
		if err != nil {
			t.Fatalf("whoami --data-dir: %v", err)
		}
		e.contains("whoami --data-dir", out, "admin.token")

		_, _, err = e.runAs("", "unit", "ls")
		var msg bytes.Buffer
		PrintError(&msg, err)
		if ExitCode(err) != exitError || !strings.Contains(msg.String(), "(unauthenticated)") || !strings.Contains(msg.String(), "logbook login") {
			t.Errorf("no token: exit %d\n%s", ExitCode(err), msg.String())
		}
	})

	e.contains("channel create", e.ok("channel", "create", "stable", "--description", "what the fleet runs"), "channel/stable created")
	e.contains("register", e.ok("unit", "register", "ship1", "--platform", "linux/arm64", "--label", "site=north", "--channel", "stable"), "unit/ship1 registered")
	e.ok("unit", "register", "ship2", "--platform", "linux/amd64", "-l", "site=south")
	registered := e.position()
	e.contains("label", e.ok("unit", "label", "ship1", "role=tanker"), "unit/ship1 labelled")
	e.contains("label again", e.ok("unit", "label", "ship1", "role=tanker"), "unit/ship1 unchanged")

	t.Run("unit ls and show", func(t *testing.T) {
		e := e.with(t)
		e.caughtUp()
		out := e.ok("unit", "ls")
		e.contains("unit ls", out, "NAME", "ship1", "ship2", "role=tanker,site=north")
		out = e.ok("unit", "ls", "--selector", "site=north", "-o", "json")
		var res struct {
			Units []struct{ Name string } `json:"units"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Units) != 1 || res.Units[0].Name != "ship1" {
			t.Errorf("unit ls --selector -o json: %v\n%s", err, out)
		}
		e.contains("unit ls -o yaml", e.ok("unit", "ls", "-o", "yaml"), "- ", "name: ship2")
		e.contains("unit show", e.ok("unit", "show", "ship1"), "Status:", "active", "role=tanker", "stable")
		_, _, err := e.run("unit", "show", "ship9")
		var msg bytes.Buffer
		PrintError(&msg, err)
		if ExitCode(err) != exitError || !strings.Contains(msg.String(), "(not_found)") {
			t.Errorf("unit show ship9: exit %d\n%s", ExitCode(err), msg.String())
		}
	})

	t.Run("releases and channels", func(t *testing.T) {
		e := e.with(t)
		key := filepath.Join(dir, "release.key")
		writeSigningKey(t, key)
		bin := filepath.Join(dir, "agent-arm64")
		if err := os.WriteFile(bin, []byte("agent binary"), 0o755); err != nil {
			t.Fatal(err)
		}
		e.contains("publish", e.ok("release", "publish", "2026.11.3", "--repo", "logbook=4f3c2a1b9d0e8f7a6b5c4d3e2f1a0b9c8d7e6f5a",
			"--artifact", "linux/arm64=https://dl.example.com/agent-arm64,file="+bin, "--signing-key", key), "release/2026.11.3 published")
		file := filepath.Join(dir, "release.yaml")
		if err := os.WriteFile(file, []byte(`version: 2026.11.4
repos:
  logbook: 5f3c2a1b9d0e8f7a6b5c4d3e2f1a0b9c8d7e6f5a
artifacts:
  - platform: linux/arm64
    url: https://dl.example.com/agent-arm64-4
    file: agent-arm64
manifest:
  - method: syslogforwarding
    domain: nginx
    command: /usr/bin/logforward
    args: [--target, udp://logs:514]
    restartPolicy: on-failure
`), 0o644); err != nil {
			t.Fatal(err)
		}
		e.contains("publish -f", e.ok("release", "publish", "-f", file, "--signing-key", key), "release/2026.11.4 published")
		e.contains("release show", e.ok("release", "show", "2026.11.4"), "published", "linux/arm64", "syslogforwarding", "on-failure")

		e.contains("promote", e.ok("channel", "promote", "stable", "2026.11.3", "--reason", "first"), "channel/stable now on 2026.11.3")
		e.ok("channel", "promote", "stable", "2026.11.4", "--reason", "second")
		e.contains("rollback", e.ok("channel", "rollback", "stable", "--reason", "error rate"), "rolled back to 2026.11.3")
		e.contains("flag", e.ok("channel", "flag", "stable", "new-ui=on"), "flag new-ui set to on")
		e.contains("yank", e.ok("release", "yank", "2026.11.4", "--reason", "crashes"), "release/2026.11.4 yanked")
		e.caughtUp()
		out := e.ok("release", "ls")
		e.contains("release ls", out, "2026.11.3")
		if strings.Contains(out, "2026.11.4") {
			t.Errorf("release ls shows the yanked release:\n%s", out)
		}
		e.contains("release ls --all", e.ok("release", "ls", "--all"), "2026.11.4", "yanked: crashes")
		e.contains("channel ls", e.ok("channel", "ls"), "stable", "2026.11.3", "new-ui=on")
		e.contains("channel show", e.ok("channel", "show", "stable"), "Current release:", "2026.11.3", "History:", "rollback", "error rate")

		e.contains("pin", e.ok("unit", "pin", "ship2", "2026.11.3"), "unit/ship2 pinned to 2026.11.3")
		e.contains("unpin", e.ok("unit", "unpin", "ship2"), "unit/ship2 unpinned")
		e.contains("assign", e.ok("unit", "assign", "ship2", "stable"), "unit/ship2 assigned to channel stable")
		e.contains("unit show", e.ok("unit", "show", "ship2"), "2026.11.3")
	})

	t.Run("processes", func(t *testing.T) {
		e := e.with(t)
		e.contains("process set", e.ok("process", "set", "ship1", "syslogforwarding", "nginx", "--desired", "running", "--restart", "on-failure", "--config", "target=udp://logs:514"), "updated")
		e.contains("process show", e.ok("process", "show", "ship1", "syslogforwarding", "nginx"), "running", "on-failure", "target=udp://logs:514")
		e.caughtUp()
		e.ok("process", "ls", "ship1")
	})

	t.Run("commands", func(t *testing.T) {
		e := e.with(t)
		out := e.ok("cmd", "run", "ship1", "--detach", "--", "uptime")
		m := regexp.MustCompile(`command (\S+) issued to 1 unit`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("cmd run --detach:\n%s", out)
		}
		e.caughtUp()
		e.contains("cmd ls", e.ok("cmd", "ls", "ship1"), m[1], "issued", "uptime")
		e.contains("cmd show", e.ok("cmd", "show", "ship1", m[1]), "Status:", "issued", "uptime")

		// Run and wait; the agents' results are recorded on the unit
		// entities as the bridge would record them.
		type result struct {
			out, diag string
			err       error
		}
		done := make(chan result, 1)
		go func() {
			o, d, err := e.run("cmd", "run", "ship1", "ship2", "--id", "e2e-1", "--progress", "--", "echo", "hi")
			done <- result{o, d, err}
		}()
		for _, u := range []struct {
			unit string
			exit int32
		}{{"ship1", 0}, {"ship2", 3}} {
			e.awaitPending(u.unit, "e2e-1")
			md := events.Metadata{CorrelationID: "e2e", Principal: "unit:" + u.unit}
			if _, err := e.host.Execute(e.ctx, "unit-"+u.unit, &logbookv1.RecordUnitCommandResult{CommandId: "e2e-1", ExitCode: u.exit, Output: []byte("hi from " + u.unit + "\n")}, md); err != nil {
				t.Fatal(err)
			}
		}
		r := <-done
		if ExitCode(r.err) != exitError {
			t.Errorf("cmd run with a failed unit: exit %d (%v), want 1", ExitCode(r.err), r.err)
		}
		e.contains("cmd run", r.out, "== ship1: succeeded (exit 0", "hi from ship1", "== ship2: failed (exit 3", "hi from ship2")
		e.contains("cmd run progress", r.diag, "0/2 done", "2/2 done")
	})

	t.Run("events", func(t *testing.T) {
		e := e.with(t)
		e.contains("events tail", e.ok("events", "tail", "-n", "3"), "\n")
		out := e.ok("events", "tail", "unit-ship1", "-n", "100", "-o", "json")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var first map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["type"] != "logbook.v1.UnitRegistered" || first["payload"] == nil {
			t.Errorf("events tail -o json, first line %q: %v", lines[0], err)
		}
		e.contains("events tail --type", e.ok("events", "tail", "--category", "unit", "--type", "UnitLabelsSet"), "UnitLabelsSet", "role")
		e.contains("events head", e.ok("events", "head"), "Position:", "Hash:")

		// Follow: a label set after the tail started shows up, and
		// cancelling ends the command without an error.
		ctx, cancel := context.WithCancel(e.ctx)
		var buf syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, []string{"--server", e.url, "--token", e.admin, "events", "tail", "--follow", "-n", "0", "unit-ship2"}, &buf, io.Discard)
		}()
		for !strings.Contains(buf.String(), `"followed":"yes"`) {
			e.ok("unit", "label", "ship2", "followed=yes")
			select {
			case err := <-done:
				t.Fatalf("follow ended early: %v\n%s", err, buf.String())
			case <-time.After(20 * time.Millisecond):
			}
			e.ok("unit", "label", "ship2", "followed-")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("follow after cancel: %v", err)
		}
	})

	t.Run("audit", func(t *testing.T) {
		e := e.with(t)
		out := e.ok("audit", "unit-ship1", "--at", fmt.Sprint(registered))
		e.contains("audit --at", out, "site: north")
		if strings.Contains(out, "tanker") {
			t.Errorf("audit at position %d shows a later label:\n%s", registered, out)
		}
		e.contains("audit --diff", e.ok("audit", "unit-ship1", "--at", fmt.Sprint(registered), "--diff", "now"), "FIELD", "labels.role", "tanker", "UnitLabelsSet")
		e.contains("audit -o json", e.ok("audit", "unit-ship1", "-o", "json"), `"state"`, `"stream": "unit-ship1"`)
		// Before its first event the entity did not exist.
		_, _, err := e.run("audit", "unit-ship1", "--at", "-1h")
		if ExitCode(err) != exitError || !strings.Contains(err.Error(), "(not_found)") {
			t.Errorf("audit before the first event: %v", err)
		}
		e.caughtUp()
		e.contains("audit timeline", e.ok("audit", "timeline", "--stream", "unit-ship1", "--since", "-1h"), "UnitRegistered", "UnitLabelsSet")
	})

	t.Run("verify and projections", func(t *testing.T) {
		e := e.with(t)
		e.contains("verify", e.ok("verify"), "ok: positions 1..")
		e.contains("projections ls", e.ok("projections", "ls"), "fleet", "audit", "commands")
		_, diag, err := e.run("projections", "rebuild", "fleet", "--progress")
		if err != nil {
			t.Fatalf("projections rebuild: %v\n%s", err, diag)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		e := e.with(t)
		out, diag, err := e.run("token", "create", "alice", "--role", "read", "--ttl", "1d", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		e.contains("token create warning", diag, "not shown again")
		var created struct {
			Token string              `json:"token"`
			Info  struct{ ID string } `json:"info"`
		}
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.Token == "" {
			t.Fatalf("token create -o json: %v\n%s", err, out)
		}
		out, _, err = e.runAs(created.Token, "whoami")
		if err != nil {
			t.Fatal(err)
		}
		e.contains("whoami as alice", out, "alice", "read")
		_, _, err = e.runAs(created.Token, "unit", "register", "ship3")
		var msg bytes.Buffer
		PrintError(&msg, err)
		if ExitCode(err) != exitError || !strings.Contains(msg.String(), "(permission_denied)") {
			t.Errorf("read token writing: exit %d\n%s", ExitCode(err), msg.String())
		}
		e.contains("token ls", e.ok("token", "ls"), "alice", "read", "active")
		e.contains("token revoke", e.ok("token", "revoke", created.Info.ID), "revoked")
		if _, _, err := e.runAs(created.Token, "whoami"); ExitCode(err) != exitError {
			t.Errorf("revoked token: %v", err)
		}
	})

	t.Run("enrolment, cluster, decommission", func(t *testing.T) {
		e := e.with(t)
		e.contains("enrol-token", e.ok("unit", "enrol-token", "ship1", "--ttl", "2h"), "LOGBOOK_AGENT_TOKEN=", "--unit ship1", "--server nats://127.0.0.1:4250")
		e.contains("cluster status", e.ok("cluster", "status"), "single node")
		e.contains("decommission", e.ok("unit", "decommission", "ship2", "--reason", "sold"), "unit/ship2 decommissioned")
		e.contains("unit show", e.ok("unit", "show", "ship2"), "decommissioned")
	})

	t.Run("login", func(t *testing.T) {
		e := e.with(t)
		cfg := filepath.Join(dir, "config.yaml")
		t.Setenv(envConfig, cfg)
		e.contains("login", e.ok("login"), "Logged in to "+e.url, "admin")
		var out bytes.Buffer
		if err := Run(e.ctx, []string{"unit", "ls"}, &out, io.Discard); err != nil {
			t.Fatalf("unit ls with the saved login: %v", err)
		}
		e.contains("unit ls after login", out.String(), "ship1")
	})
}

// Run2 runs the CLI without a default token and returns its output.
func Run2(ctx context.Context, args ...string) (string, string, error) {
	var out, diag bytes.Buffer
	err := Run(ctx, args, &out, &diag)
	return out.String(), diag.String(), err
}

// awaitPending waits until the command id is pending on unit.
func (e *e2e) awaitPending(unitName, id string) {
	e.t.Helper()
	for {
		res, err := e.host.Read(e.ctx, "unit-"+unitName)
		if err != nil {
			e.t.Fatal(err)
		}
		if st, ok := res.State.(*logbookv1.UnitState); ok {
			for _, c := range st.GetPending() {
				if c.GetCommandId() == id {
					return
				}
			}
		}
		select {
		case <-e.ctx.Done():
			e.t.Fatal(e.ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
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
