package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// clusterNode is one `logbook serve --cluster` process and its ports.
type clusterNode struct {
	id                            string
	data                          string
	raftPort, routePort, natsPort int
	*server
}

const routeSecret = "e2e-route-secret-0123456789"

// startClusterNode starts node i of nodes; i == 0 bootstraps, the others
// join through node 0.
func startClusterNode(t *testing.T, nodes []*clusterNode, i int) {
	t.Helper()
	n := nodes[i]
	var routes []string
	for j, o := range nodes {
		if j != i {
			routes = append(routes, fmt.Sprintf("127.0.0.1:%d", o.routePort))
		}
	}
	args := []string{"--cluster", "--node-id", n.id,
		"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", n.raftPort),
		"--nats-cluster-listen", fmt.Sprintf("127.0.0.1:%d", n.routePort),
		"--nats-routes", strings.Join(routes, ","), "--nats-cluster-secret", routeSecret}
	if i == 0 {
		args = append(args, "--bootstrap")
	} else {
		// Every node signs commands with the cluster's one key.
		args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", nodes[0].raftPort),
			"--signing-key", filepath.Join(nodes[0].data, "signing.key"))
	}
	n.server = startServer(t, n.data, n.natsPort, args...)
	n.server.token = clusterToken
}

// clusterToken is the admin token of the cluster under test, which the
// bootstrap node writes; the other nodes' data directories have none.
var clusterToken string

// clusterStatus returns the leader's id and each member's applied
// position and head hash, as node s sees them.
func (s *server) clusterStatus(t *testing.T, token string) (leader string, heads map[string]string) {
	t.Helper()
	r := s.cli(t, "--token", token, "cluster", "status", "-o", "json")
	if r.code != 0 {
		return "", nil
	}
	var st struct {
		Leader  string `json:"leader"`
		Members []struct {
			ID       string `json:"id"`
			Applied  string `json:"appliedPosition"`
			HeadHash string `json:"headHash"`
			Error    string `json:"error"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("cluster status -o json: %v\n%s", err, r.stdout)
	}
	heads = map[string]string{}
	for _, m := range st.Members {
		if m.Error == "" {
			heads[m.ID] = m.Applied + "/" + m.HeadHash
		}
	}
	return st.Leader, heads
}

// TestClusterServe runs three real `logbook serve --cluster` nodes: writes
// through any node land once in one log; a real agent connected to a
// follower's NATS server runs a command dispatched by the leader; after
// the leader is killed with SIGKILL a new one takes over, writes go on,
// and the restarted node catches up to the same head and hash.
func TestClusterServe(t *testing.T) {
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = &clusterNode{id: fmt.Sprintf("n%d", i+1), data: t.TempDir(),
			raftPort: freePort(t), routePort: freePort(t), natsPort: freePort(t)}
	}
	startClusterNode(t, nodes, 0)
	token := readAdminToken(t, nodes[0].data)
	clusterToken = token
	nodes[0].token = token
	startClusterNode(t, nodes, 1)
	startClusterNode(t, nodes, 2)
	sameHeads := func(want int, alive ...*clusterNode) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d members on one head", want), func() bool {
			_, heads := alive[0].clusterStatus(t, token)
			if len(heads) != want {
				return false
			}
			var first string
			for _, h := range heads {
				if first == "" {
					first = h
				} else if h != first {
					return false
				}
			}
			return true
		})
	}
	sameHeads(3, nodes[0])

	// Writes through each node; reads anywhere.
	for i, n := range nodes {
		n.ok(t, "--token", token, "unit", "register", fmt.Sprintf("ship%d", i+1), "--label", "fleet=e2e")
	}
	eventually(t, "the third node lists every unit", func() bool {
		r := nodes[2].cli(t, "--token", token, "unit", "ls", "--selector", "fleet=e2e", "-o", "json")
		return r.code == 0 && strings.Count(r.stdout, `"name"`) == 3
	})

	// A real agent on a follower's NATS server, commands from the leader.
	leader, _ := nodes[0].clusterStatus(t, token)
	var follower *clusterNode
	for _, n := range nodes {
		if n.id != leader {
			follower = n
			break
		}
	}
	enrol := follower.jsonOf(t, "--token", token, "unit", "enrol-token", "ship1")
	agentToken, _ := field(enrol, "token").(string)
	startAgent(t, filepath.Join(t.TempDir(), "ship1"), "ship1", follower.nats, agentToken)
	eventually(t, "ship1 connected through a follower", func() bool { return follower.connected(t, "ship1") })
	if out := follower.ok(t, "--token", token, "cmd", "run", "ship1", "--", "echo", "via", "follower"); !strings.Contains(out, "via follower") {
		t.Fatalf("cmd run through the cluster: %q", out)
	}

	// Kill the leader; another takes over and writes go on.
	var dead *clusterNode
	var alive []*clusterNode
	for _, n := range nodes {
		if n.id == leader {
			dead = n
		} else {
			alive = append(alive, n)
		}
	}
	if dead == nil {
		t.Fatalf("leader %q is none of the nodes", leader)
	}
	if err := dead.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-dead.exited
	eventually(t, "a new leader", func() bool {
		l, _ := alive[0].clusterStatus(t, token)
		return l != "" && l != dead.id
	})
	eventually(t, "a write after the failover", func() bool {
		return alive[0].cli(t, "--token", token, "unit", "register", "ship4").code == 0
	})
	alive[1].ok(t, "--token", token, "unit", "label", "ship4", "after=failover")
	if out := alive[1].ok(t, "--token", token, "cmd", "run", "ship1", "--", "echo", "new", "leader"); !strings.Contains(out, "new leader") {
		t.Fatalf("cmd run after the failover: %q", out)
	}

	// The killed node comes back on its data and catches up.
	for i, n := range nodes {
		if n == dead {
			startClusterNode(t, nodes, i)
		}
	}
	sameHeads(3, alive[0])
	for _, n := range nodes {
		n.ok(t, "--token", token, "verify")
	}
	eventually(t, "the restarted node lists ship4", func() bool {
		r := dead.cli(t, "--token", token, "unit", "show", "ship4", "-o", "json")
		return r.code == 0 && strings.Contains(r.stdout, "failover")
	})

	// Hand the leadership to the restarted node, then take another node
	// out of the cluster: the remaining two keep serving writes.
	if out := alive[0].ok(t, "cluster", "transfer", dead.id); !strings.Contains(out, dead.id) {
		t.Fatalf("cluster transfer %s: %q", dead.id, out)
	}
	eventually(t, dead.id+" leads", func() bool {
		l, _ := alive[1].clusterStatus(t, token)
		return l == dead.id
	})
	removed := alive[1]
	dead.ok(t, "cluster", "remove", removed.id)
	removed.stop(t)
	dead.ok(t, "unit", "register", "ship5")
	sameHeads(2, dead)
	dead.stop(t)
	alive[0].stop(t)
}
