package testnet

import "testing"

// Ports are never handed out twice by one binary, even when the first is
// not bound yet (TestClusterServe once gave a node's NATS port to
// another node's raft listener).
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 2000 {
		p := FreePort(t)
		if p < low || p >= high {
			t.Fatalf("port %d outside [%d, %d)", p, low, high)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
