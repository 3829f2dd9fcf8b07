package bridge

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// externalURL is the machine's NATS server (override with
// LOGBOOK_TEST_NATS_URL). It has no per-unit auth, so only the link itself
// is tested against it; the permission tests use the embedded server.
func externalURL(t *testing.T) string {
	t.Helper()
	url, addr := "nats://127.0.0.1:4222", "127.0.0.1:4222"
	if u := os.Getenv("LOGBOOK_TEST_NATS_URL"); u != "" {
		url = u
	}
	if os.Getenv("LOGBOOK_TEST_NATS_URL") == "" {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true and the NATS server at %s is unreachable: %v", addr, err)
			}
			t.Skipf("no NATS server at %s (%v); set LOGBOOK_TEST_NATS_URL or start one; CI=true makes this a failure", addr, err)
		}
		c.Close()
	}
	return url
}

func TestExternalNATS(t *testing.T) {
	url := externalURL(t)
	nc, err := nats.Connect(url, nats.Name("logbook-bridge-test"), nats.Timeout(5*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("connect to %s: %v", url, err)
		}
		t.Skipf("connect to %s: %v", url, err)
	}
	defer nc.Close()

	st := mustStore(t)
	host := mustHost(t, st)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	// Unique names: the server is shared with whatever else runs here.
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	name := "exttest" + suffix
	mustRegister(t, host, name)
	cfg := testConfig()
	cfg.QueueGroup = "logbook-bridge-test-" + suffix
	b, err := Start(testCtx(t), nc, host, st, key, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	unitConn, err := nats.Connect(url, nats.CustomInboxPrefix(InboxPrefix(name)))
	if err != nil {
		t.Fatal(err)
	}
	defer unitConn.Close()
	agent := startAgent(t, unitConn, name, pub, 1, "")

	mustIssue(t, host, name, "c1", time.Now().Add(time.Hour), "uptime")
	waitEvent(t, st, "unit-"+name, func(d *logbookv1.UnitCommandDelivered) bool { return d.GetCommandId() == "c1" })
	if cmds := agent.commands(); len(cmds) == 0 || !cmds[0].VerifySignature(pub) {
		t.Fatalf("agent got %v", cmds)
	}

	reading := edgeEvent(t, name, "sensor", "engine", 1, &logbookv1.AgentReading{Sensor: "rpm", Value: 1})
	for range 2 {
		if ack := send(t, unitConn, reading); !ack.GetStored() {
			t.Fatalf("ack %v", ack)
		}
	}
	if got := streamEvents(t, st, "readings-"+name); len(got) != 1 || !bytes.Equal(got[0].ID[:], reading.GetId()) {
		t.Fatalf("readings: %v", got)
	}
	res := edgeEvent(t, name, "shellcommand", "operatingsystem", 2, &logbookv1.AgentCommandResult{CommandId: "c1", Output: []byte("up 3 days")})
	if ack := send(t, unitConn, res); !ack.GetStored() {
		t.Fatalf("ack %v", ack)
	}
	waitEvent(t, st, "unit-"+name, func(s *logbookv1.UnitCommandSucceeded) bool { return s.GetCommandId() == "c1" })
}
