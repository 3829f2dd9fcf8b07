// Package testnet gives tests loopback ports to hand to processes that must
// know their own and each other's addresses before they start (cluster
// peers, a NATS server that must come back on the same port).
//
// A port found by listening on ":0" and closing is in the kernel's
// ephemeral range, where any other test's ":0" listener or outgoing
// connection may take it before the process under test binds it. These
// ports come from below that range (20000-32767 on Linux's default
// 32768-60999), chosen at random and checked free, and never handed out
// twice by one test binary (a port handed out is not bound until its
// process starts, so a later check would find it free), so only a test in
// another package picking the same one at random can collide.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

const (
	low  = 20000
	high = 32768
)

var (
	mu     sync.Mutex
	handed = map[int]bool{} // ports this binary handed out
)

// FreePort returns a loopback TCP port that is free now and outside the
// ephemeral range.
func FreePort(tb testing.TB) int {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		p := low + rand.IntN(high-low)
		if handed[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		_ = ln.Close()
		handed[p] = true
		return p
	}
	tb.Fatal("testnet: no free port in 200 tries")
	return 0
}

// FreeAddr returns "127.0.0.1:<FreePort>".
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
}
