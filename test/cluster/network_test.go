package cluster_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/test/testnet"
)

// network puts a TCP proxy on every directed link between nodes (i dials
// j through link i→j, by clusternode's -dial-via), so that a test can cut
// a node off from the others without root: cutting a link makes it drop
// everything, as a partition that loses packets does, until it heals.
// Clients reach the nodes' HTTP ports directly, as they would reach a
// node on the far side of a partition.
type network struct {
	links []*link
}

// link carries the connections node from opens to node to.
type link struct {
	t        *testing.T
	from, to *proc
	ln       net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{} // both ends of every connection carried
	done  bool
	wg    sync.WaitGroup
}

// connect puts a network between c's nodes; call it before launch.
func connect(t *testing.T, c *cluster) *network {
	t.Helper()
	nw := &network{}
	t.Cleanup(nw.close)
	for _, from := range c.nodes {
		var via []string
		for _, to := range c.nodes {
			if to == from {
				continue
			}
			l := &link{t: t, from: from, to: to, ln: listen(t), conns: make(map[net.Conn]struct{})}
			nw.links = append(nw.links, l)
			l.wg.Add(1)
			go l.accept()
			via = append(via, to.raft+"="+l.ln.Addr().String())
		}
		from.args = append(from.args, "-dial-via", strings.Join(via, ","))
	}
	return nw
}

// listen listens on a loopback port outside the ephemeral range (see
// testnet); another test may take the port between the check and the
// listen, so it tries a few.
func listen(t *testing.T) net.Listener {
	t.Helper()
	var err error
	for range 5 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", testnet.FreeAddr(t)); err == nil {
			return ln
		}
	}
	t.Fatalf("listen for a link: %v", err)
	return nil
}

// isolate cuts every link into and out of p.
func (nw *network) isolate(p *proc) {
	for _, l := range nw.links {
		if l.from == p || l.to == p {
			l.setCut(true)
		}
	}
}

// heal restores every link into and out of p.
func (nw *network) heal(p *proc) {
	for _, l := range nw.links {
		if l.from == p || l.to == p {
			l.setCut(false)
		}
	}
}

func (nw *network) close() {
	for _, l := range nw.links {
		l.close()
	}
}

// setCut cuts or heals l. Cutting leaves its connections open and silent,
// so the nodes notice only by their timeouts; healing closes them, as
// connections that timed out across a partition would be, and the nodes
// dial again.
func (l *link) setCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut == cut {
		return
	}
	l.cut = cut
	if !cut {
		for c := range l.conns {
			c.Close()
		}
	}
}

func (l *link) isCut() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut
}

// track registers c to be closed on heal or close; false once closed.
func (l *link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *link) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	c.Close()
}

func (l *link) accept() {
	defer l.wg.Done()
	for {
		in, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.t.Errorf("link %s→%s: accept: %v", l.from.id, l.to.id, err)
			}
			return
		}
		if !l.track(in) {
			in.Close()
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.carry(in)
		}()
	}
}

// carry forwards in to the node at the far end until either side closes,
// or holds it silent while the link is cut.
func (l *link) carry(in net.Conn) {
	defer l.untrack(in)
	if l.isCut() {
		// Accepted but never answered: the dialer's connect succeeds
		// and its calls time out, until heal or close closes in.
		buf := make([]byte, 4<<10)
		for {
			if _, err := in.Read(buf); err != nil {
				return
			}
		}
	}
	out, err := net.DialTimeout("tcp", l.to.raft, 5*time.Second)
	if err != nil {
		return // the node is down: the dialer sees its connection close
	}
	if !l.track(out) {
		out.Close()
		return
	}
	defer l.untrack(out)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.pump(in, out)
	}()
	l.pump(out, in)
	wg.Wait()
}

// pump copies src to dst until either fails, then closes both so that the
// other direction ends too. While the link is cut it drops what it reads;
// heal closes the connection before anything flows again, so no stream
// resumes with a gap.
func (l *link) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.isCut() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}

func (l *link) close() {
	l.mu.Lock()
	l.done = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.ln.Close()
	l.wg.Wait()
}
