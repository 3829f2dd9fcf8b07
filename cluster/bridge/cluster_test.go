package bridge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logbook-fleet/logbook/test/testnet"
)

// freeAddr returns a loopback address and its port for a server to bind
// later.
func freeAddr(t *testing.T) (string, int) {
	p := testnet.FreePort(t)
	return fmt.Sprintf("127.0.0.1:%d", p), p
}

// TestServerCluster: two embedded servers joined by routes act as one
// NATS: a unit connected to the second reaches a subscriber (the bridge)
// on the first, with the credentials both check, and a route with the
// wrong secret is not joined.
func TestServerCluster(t *testing.T) {
	e := newEnv(t)
	password := e.enrolDirect("ship1")
	const secret = "route-secret-0123456789"
	addrA, portA := freeAddr(t)
	addrB, portB := freeAddr(t)
	start := func(port int, routes ...string) *Server {
		t.Helper()
		cfg := DefaultServerConfig()
		cfg.Host, cfg.Port, cfg.Logger = "127.0.0.1", -1, quietLogger()
		cfg.Cluster = &ServerCluster{Host: "127.0.0.1", Port: port, Routes: routes, Secret: secret}
		s, err := StartServer(testCtx(t), e.creds, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a := start(portA, addrB)
	b := start(portB, addrA)

	bridgeConn, err := a.ConnectInternal()
	if err != nil {
		t.Fatal(err)
	}
	defer bridgeConn.Close()
	sub, err := bridgeConn.Subscribe("ship1.event.>", func(m *nats.Msg) { _ = m.Respond([]byte("ack " + m.Subject)) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := bridgeConn.Flush(); err != nil {
		t.Fatal(err)
	}

	unitConn := connectUnit(t, b.ClientURL(), "ship1", password, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		reply, err := unitConn.Request("ship1.event.heartbeat.agent", []byte("hi"), 500*time.Millisecond)
		if err == nil {
			if got := string(reply.Data); got != "ack ship1.event.heartbeat.agent" {
				t.Fatalf("reply %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reply across the route: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // routes connect asynchronously
	}

	// A server with another secret does not join.
	cfg := DefaultServerConfig()
	cfg.Host, cfg.Port, cfg.Logger = "127.0.0.1", -1, quietLogger()
	_, portC := freeAddr(t)
	cfg.Cluster = &ServerCluster{Host: "127.0.0.1", Port: portC, Routes: []string{addrA}, Secret: "another-secret-0123456789"}
	c, err := StartServer(testCtx(t), e.creds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	unitOnC := connectUnit(t, c.ClientURL(), "ship1", password, nil)
	if _, err := unitOnC.Request("ship1.event.heartbeat.agent", []byte("hi"), 300*time.Millisecond); err == nil {
		t.Fatal("a server with the wrong route secret reached the bridge")
	}
}

func TestServerClusterConfigErrors(t *testing.T) {
	cfg := DefaultServerConfig()
	cfg.Cluster = &ServerCluster{Port: 0, Secret: "route-secret-0123456789"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "cluster port 0") {
		t.Errorf("Validate with route port 0 = %v; want it refused (peers list the port)", err)
	}
	cfg.Cluster = &ServerCluster{Port: 70000, Routes: []string{"nohostport"}, Secret: "short"}
	err := cfg.Validate()
	for _, want := range []string{"cluster port", "secret", "nohostport"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want it to mention %q", err, want)
		}
	}
}
