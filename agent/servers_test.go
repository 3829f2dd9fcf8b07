package agent

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// clusteredOptions are the fake control plane's server options as one node
// of a NATS cluster, with routes to those listed.
func clusteredOptions(routes ...string) *server.Options {
	opts := fakeCPOptions()
	opts.Cluster = server.ClusterOpts{Name: "logbook-test", Host: "127.0.0.1", Port: -1}
	for _, r := range routes {
		opts.Routes = append(opts.Routes, server.RoutesFromStr(r)...)
	}
	return opts
}

func hostPort(t testing.TB, u string) string {
	t.Helper()
	hp := strings.TrimPrefix(u, "nats://")
	if _, _, err := net.SplitHostPort(hp); err != nil {
		t.Fatalf("server URL %q: %v", u, err)
	}
	return hp
}

// A unit enrolled through one control-plane node learns the other nodes'
// servers from it and stores them, so that a later start reaches the
// control plane while that node is down.
func TestAgentRemembersClusterServers(t *testing.T) {
	cp := newFakeCPWith(t, clusteredOptions())
	b, err := server.NewServer(clusteredOptions(fmt.Sprintf("nats-route://%s", cp.srv.ClusterAddr())))
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	t.Cleanup(b.Shutdown)
	if !b.ReadyForConnections(10 * time.Second) {
		t.Fatal("second nats-server not ready")
	}
	waitFor(t, "the route between the two servers", func() bool { return cp.srv.NumRoutes() > 0 && b.NumRoutes() > 0 })
	urlB := hostPort(t, b.ClientURL())

	cfg := testConfig(t, cp, t.TempDir())
	a := mustOpen(t, cfg)
	stored := func() []string {
		id, err := loadEnrolment(enrolmentPath(cfg.DataDir))
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			t.Fatal(err)
		}
		hps := make([]string, len(id.URLs))
		for i, u := range id.URLs {
			hps[i] = hostPort(t, u)
		}
		return hps
	}
	waitFor(t, "the second server in the stored enrolment", func() bool { return slices.Contains(stored(), urlB) })
	if got := stored(); got[0] != hostPort(t, cp.url) {
		t.Fatalf("stored servers %v: the one enrolled through must stay first", got)
	}
	mustClose(t, a)

	// The node the unit enrolled through goes down; the unit restarts.
	cp.nc.Close()
	cp.srv.Shutdown()
	a = mustOpen(t, cfg)
	waitFor(t, "the restarted agent connected to the second server", func() bool {
		return a.nc.IsConnected() && hostPort(t, a.nc.ConnectedUrl()) == urlB
	})
	mustClose(t, a)
}
