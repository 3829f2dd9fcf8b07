package bridge

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestSignCommand(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	issued := &logbookv1.UnitCommandIssued{
		CommandId: "c1", Method: "shellcommand", Domain: "operatingsystem", Args: []string{"uptime"},
		Payload: []byte("x"), Deadline: timestamppb.New(time.Now().Add(time.Hour)), IssuedAt: timestamppb.Now(),
		IssuedBy: "alice", Signature: []byte("issuer's, ignored"),
	}
	c, err := SignCommand("ship1", issued, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !c.VerifySignature(pub) {
		t.Fatal("signed command does not verify")
	}
	if c.VerifySignature(otherPub) {
		t.Fatal("verifies with another key")
	}
	if c.GetUnit() != "ship1" || c.GetCommandId() != "c1" || c.GetArgs()[0] != "uptime" || c.GetIssuedBy() != "alice" {
		t.Fatalf("command content: %v", c)
	}
	for name, tamper := range map[string]func(*logbookv1.EdgeCommand){
		"unit":     func(c *logbookv1.EdgeCommand) { c.Unit = "ship2" },
		"args":     func(c *logbookv1.EdgeCommand) { c.Args = []string{"rm", "-rf", "/"} },
		"deadline": func(c *logbookv1.EdgeCommand) { c.Deadline = timestamppb.New(time.Now().Add(48 * time.Hour)) },
		"forged":   func(c *logbookv1.EdgeCommand) { c.Sign(otherPriv) },
		"unsigned": func(c *logbookv1.EdgeCommand) { c.Signature = nil },
	} {
		c2, _ := SignCommand("ship1", issued, priv)
		tamper(c2)
		if c2.VerifySignature(pub) {
			t.Errorf("%s: tampered command verifies", name)
		}
	}
	if _, err := SignCommand("ship1", &logbookv1.UnitCommandIssued{CommandId: "c", Method: "a.b", Domain: "d", Deadline: timestamppb.Now()}, priv); !errors.Is(err, ErrInvalidSubject) {
		t.Errorf("bad method: %v", err)
	}
	if _, err := SignCommand("ship1", issued, priv[:10]); err == nil {
		t.Error("short key accepted")
	}
}

func TestBackoff(t *testing.T) {
	base, limit := 100*time.Millisecond, 5*time.Second
	for attempt := 1; attempt < 100; attempt++ {
		want := limit
		if attempt < 20 {
			want = min(base<<(attempt-1), limit)
		}
		for range 20 {
			d := backoff(attempt, base, limit)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

func TestServerPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cfg := DefaultServerConfig()
	cfg.Host, cfg.Port, cfg.Logger = "127.0.0.1", port, quietLogger()
	srv, err := StartServer(testCtx(t), NewMemoryCredentials(), cfg)
	if err == nil {
		srv.Close()
		t.Fatal("started on a taken port")
	}
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("error %q: want ErrAddrInUse naming port %d", err, port)
	}
}

func TestServerConfigValidate(t *testing.T) {
	cfg := DefaultServerConfig()
	if cfg.Port != DefaultPort || DefaultPort == 4222 {
		t.Fatalf("default port %d", cfg.Port)
	}
	cfg.Port, cfg.ReadyTimeout, cfg.Logger = 70000, 0, nil
	err := cfg.Validate()
	for _, want := range []string{"port 70000", "ready timeout", "nil logger"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %q", err, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Dispatch.AckTimeout, cfg.Dispatch.MaxInFlight, cfg.QueueGroup, cfg.Now = 0, 0, "", nil
	err := cfg.Validate()
	for _, want := range []string{"AckTimeout", "MaxInFlight", "QueueGroup", "nil Now"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %q", err, want)
		}
	}
}

func TestClosedBridge(t *testing.T) {
	e := newEnv(t)
	b := e.start(nil)
	_ = b.Close()
	_ = b.Close()
	<-b.Done()
	if _, err := b.Pending(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pending after Close: %v", err)
	}
}
