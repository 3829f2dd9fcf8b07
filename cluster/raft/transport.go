package raft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// One TCP port per node carries both raft's RPCs and Logbook's node-to-node
// calls (Consul's pattern): a connection's first byte says which.
const (
	muxRaft byte = 'R'
	muxCall byte = 'L'
)

// maxFrame bounds one node-to-node message. The largest append the store
// accepts (16 MiB of data, 65,536 events with metadata) fits.
const maxFrame = 256 << 20

// rpcHandler answers one node-to-node call.
type rpcHandler func(ctx context.Context, req *logbookv1.NodeRequest) *logbookv1.NodeResponse

// peerNet carries Logbook's node-to-node calls.
type peerNet interface {
	// call sends req to the node at addr and returns its answer.
	call(ctx context.Context, addr string, req *logbookv1.NodeRequest) (*logbookv1.NodeResponse, error)
	// serve routes calls addressed to this node to h. It is called once,
	// before any call arrives that h must answer.
	serve(h rpcHandler)
	// close stops serving and drops pooled connections.
	close() error
}

// writeFrame writes msg as a frame: its length (4 bytes, big-endian) and
// its protobuf encoding.
func writeFrame(w io.Writer, msg proto.Message) error {
	b, err := proto.MarshalOptions{}.MarshalAppend(make([]byte, 4, 4+proto.Size(msg)), msg)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	if len(b)-4 > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds the limit of %d", len(b)-4, maxFrame)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err = w.Write(b)
	return err
}

// readFrame reads one frame into msg. It allocates as bytes arrive, so a
// peer announcing a huge frame and sending little costs little memory.
func readFrame(r io.Reader, msg proto.Message) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds the limit of %d", n, maxFrame)
	}
	var b []byte
	const chunk = 1 << 20
	if n <= chunk {
		b = make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("frame body: %w", noEOF(err))
		}
	} else {
		b = make([]byte, 0, chunk)
		for uint32(len(b)) < n {
			k := min(int(n)-len(b), chunk)
			b = append(b, make([]byte, k)...)
			if _, err := io.ReadFull(r, b[len(b)-k:]); err != nil {
				return fmt.Errorf("frame body: %w", noEOF(err))
			}
		}
	}
	if err := proto.Unmarshal(b, msg); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}

// mux accepts connections on the node's port and routes them by their
// first byte: raft's to the raft transport (through raftLayer), calls to the
// node's handler.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	logger    *slog.Logger
	timeout   time.Duration
	// dial replaces plain TCP for outgoing connections (Config.Dial).
	dial      func(ctx context.Context, addr string) (net.Conn, error)
	raftConns chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	// base is the parent of the contexts calls are served with,
	// cancelled by close.
	base       context.Context
	cancelBase context.CancelFunc

	mu      sync.Mutex
	handler rpcHandler
	conns   map[net.Conn]struct{} // call connections being served
	wg      sync.WaitGroup

	// pool of idle outgoing call connections, by address
	idle map[string][]*callConn
}

// callConn is an outgoing call connection.
type callConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func newMux(ln net.Listener, advertise net.Addr, timeout time.Duration, logger *slog.Logger) *mux {
	base, cancel := context.WithCancel(context.Background())
	return &mux{
		base: base, cancelBase: cancel,
		ln: ln, advertise: advertise, logger: logger, timeout: timeout,
		raftConns: make(chan net.Conn),
		closed:    make(chan struct{}),
		conns:     make(map[net.Conn]struct{}),
		idle:      make(map[string][]*callConn),
	}
}

// acceptLoop accepts until the listener is closed.
func (m *mux) acceptLoop() {
	defer m.wg.Done()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.logger.Error("raft: accept failed; the node no longer takes connections", "err", err)
			return
		}
		if !m.track(conn) {
			conn.Close()
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(conn)
		}()
	}
}

// track registers conn so that close can close it; false once closed.
func (m *mux) track(conn net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.closed:
		return false
	default:
	}
	m.conns[conn] = struct{}{}
	return true
}

func (m *mux) untrack(conn net.Conn) {
	m.mu.Lock()
	delete(m.conns, conn)
	m.mu.Unlock()
}

func (m *mux) route(conn net.Conn) {
	var b [1]byte
	conn.SetReadDeadline(time.Now().Add(m.timeout))
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		m.untrack(conn)
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
	switch b[0] {
	case muxRaft:
		m.untrack(conn) // raft's transport owns and closes it
		select {
		case m.raftConns <- conn:
		case <-m.closed:
			conn.Close()
		}
	case muxCall:
		defer m.untrack(conn)
		defer conn.Close()
		m.serveCalls(conn)
	default:
		m.untrack(conn)
		conn.Close()
	}
}

// serveCalls answers calls on conn, one at a time, until it fails or closes.
func (m *mux) serveCalls(conn net.Conn) {
	r := bufio.NewReaderSize(conn, 64<<10)
	w := bufio.NewWriterSize(conn, 64<<10)
	for {
		var req logbookv1.NodeRequest
		if err := readFrame(r, &req); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				m.logger.Debug("raft: node call connection dropped", "remote", conn.RemoteAddr(), "err", err)
			}
			return
		}
		m.mu.Lock()
		h := m.handler
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(m.base, m.timeout)
		var resp *logbookv1.NodeResponse
		if h == nil {
			resp = &logbookv1.NodeResponse{Error: errorToProto(ErrClosed, "")}
		} else {
			resp = h(ctx, &req)
		}
		cancel()
		if err := writeFrame(w, resp); err != nil {
			return
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

func (m *mux) serve(h rpcHandler) {
	m.mu.Lock()
	m.handler = h
	m.mu.Unlock()
}

// call implements peerNet over TCP, with a pool of idle connections per
// address. A call on a pooled connection that fails before any answer is
// retried once on a fresh one (the peer may have restarted); every call is
// safe to repeat.
func (m *mux) call(ctx context.Context, addr string, req *logbookv1.NodeRequest) (*logbookv1.NodeResponse, error) {
	for attempt := 0; ; attempt++ {
		c, pooled, err := m.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, err := m.roundTrip(ctx, c, req)
		if err == nil {
			m.put(addr, c)
			return resp, nil
		}
		c.c.Close()
		if pooled && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return nil, fmt.Errorf("call %s: %w", addr, err)
	}
}

func (m *mux) roundTrip(ctx context.Context, c *callConn, req *logbookv1.NodeRequest) (*logbookv1.NodeResponse, error) {
	deadline := time.Now().Add(m.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeFrame(c.w, req); err != nil {
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	var resp logbookv1.NodeResponse
	if err := readFrame(c.r, &resp); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return &resp, nil
}

func (m *mux) get(ctx context.Context, addr string) (*callConn, bool, error) {
	m.mu.Lock()
	select {
	case <-m.closed:
		m.mu.Unlock()
		return nil, false, ErrClosed
	default:
	}
	if cs := m.idle[addr]; len(cs) > 0 {
		c := cs[len(cs)-1]
		m.idle[addr] = cs[:len(cs)-1]
		m.mu.Unlock()
		return c, true, nil
	}
	m.mu.Unlock()
	conn, err := m.dialCall(ctx, addr)
	if err != nil {
		return nil, false, fmt.Errorf("dial %s: %w", addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if _, err := conn.Write([]byte{muxCall}); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &callConn{c: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 64<<10)}, false, nil
}

// dialCall opens a call connection to addr within CallTimeout.
func (m *mux) dialCall(ctx context.Context, addr string) (net.Conn, error) {
	if m.dial == nil {
		d := net.Dialer{Timeout: m.timeout}
		return d.DialContext(ctx, "tcp", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	return m.dial(ctx, addr)
}

// maxIdlePerAddr bounds the pooled connections to one peer.
const maxIdlePerAddr = 128

func (m *mux) put(addr string, c *callConn) {
	c.c.SetDeadline(time.Time{})
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.closed:
		c.c.Close()
		return
	default:
	}
	if len(m.idle[addr]) >= maxIdlePerAddr {
		c.c.Close()
		return
	}
	m.idle[addr] = append(m.idle[addr], c)
}

// close stops accepting, closes every connection and waits for the
// goroutines serving them.
func (m *mux) close() error {
	var err error
	m.closeOnce.Do(func() {
		m.mu.Lock()
		close(m.closed)
		m.cancelBase()
		for c := range m.conns {
			c.Close()
		}
		for _, cs := range m.idle {
			for _, c := range cs {
				c.c.Close()
			}
		}
		m.idle = nil
		m.mu.Unlock()
		err = m.ln.Close()
		m.wg.Wait()
	})
	return err
}

// raftLayer is the raft transport's view of the mux: a listener of the
// connections that start with muxRaft, and a dialer that starts them so.
type raftLayer struct{ m *mux }

var _ hraft.StreamLayer = raftLayer{}

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftConns:
		return c, nil
	case <-l.m.closed:
		return nil, net.ErrClosed
	}
}

// Close is a no-op: the node closes the mux after raft's transport.
func (l raftLayer) Close() error { return nil }

func (l raftLayer) Addr() net.Addr { return l.m.advertise }

func (l raftLayer) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := l.dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if _, err := conn.Write([]byte{muxRaft}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (l raftLayer) dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if l.m.dial == nil {
		return net.DialTimeout("tcp", string(addr), timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.m.dial(ctx, string(addr))
}
