package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/agent"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"--help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage:", "--data-dir", "--token", "--allow", "--syslog", "--heartbeat", "--log-format", "LOGBOOK_AGENT_DATA_DIR", "SIGTERM"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--unit", "ship1", "--server", "nats://127.0.0.1:1"}, "data dir"},
		{[]string{"--data-dir", t.TempDir(), "--unit", "ship.1", "--server", "nats://127.0.0.1:1"}, "unit"},
		{[]string{"--data-dir", t.TempDir(), "--unit", "ship1", "--server", "nats://127.0.0.1:1", "--syslog", "nopath"}, "name=path"},
		{[]string{"--data-dir", t.TempDir(), "--unit", "ship1", "--server", "nats://127.0.0.1:1", "--log-format", "xml"}, "log-format"},
		{[]string{"stray"}, "unknown command"},
	} {
		var out bytes.Buffer
		err := Run(context.Background(), tc.args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error about %q", tc.args, err, tc.want)
		}
	}
}

func TestNoTokenOnFirstStart(t *testing.T) {
	var out bytes.Buffer
	err := Run(context.Background(), []string{"--data-dir", t.TempDir(), "--unit", "ship1", "--server", "nats://127.0.0.1:1"}, &out, &out)
	if !errors.Is(err, agent.ErrNoToken) {
		t.Fatalf("got %v, want ErrNoToken", err)
	}
}

// TestRunEnrolsAndStopsCleanly runs the agent against an embedded
// nats-server that answers enrolment, with settings from the environment,
// and cancels it as SIGTERM would.
func TestRunEnrolsAndStopsCleanly(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "ship1", Password: "pw"},
			{Username: agent.DefaultEnrolUser, Password: "tok"},
			{Username: "cp", Password: "cp"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("cp", "cp"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	nc.Subscribe("logbook.enrol", func(m *nats.Msg) {
		data, _ := proto.Marshal(&logbookv1.AgentEnrolResponse{NatsUser: "ship1", NatsPassword: "pw", ControlPlanePublicKey: pub})
		m.Respond(data)
	})
	var mu sync.Mutex
	heartbeats := 0
	nc.Subscribe("ship1.event.heartbeat.agent", func(m *nats.Msg) { mu.Lock(); heartbeats++; mu.Unlock(); m.Respond(nil) })
	nc.Flush()

	dir := t.TempDir()
	t.Setenv("LOGBOOK_AGENT_DATA_DIR", dir)
	t.Setenv("LOGBOOK_AGENT_SERVER", srv.ClientURL())
	t.Setenv("LOGBOOK_AGENT_TOKEN", "tok")
	t.Setenv("LOGBOOK_AGENT_ALLOW", "uptime,/bin/true")
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--unit", "ship1", "--heartbeat", "20ms", "--log-format", "json",
			"--syslog", "app=" + filepath.Join(dir, "app.log")}, &out, &out)
	}()
	limit := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := heartbeats
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(limit) {
			cancel()
			t.Fatalf("no heartbeat; run returned %v", <-done)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "identity", "enrolment.json")); err != nil {
		t.Fatal(err)
	}
}
