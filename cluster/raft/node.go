package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Node is one control-plane node of a raft cluster replicating the event
// log. Its Store is a complete events.Store: appends go through raft (to
// the leader, forwarded when this node follows) and reads are served by
// the node's own replica.
type Node struct {
	cfg    Config
	logger *slog.Logger

	store *embedded.Store
	wal   *raftwal.WAL
	meta  *metadb.BoltMetaDB
	snaps hraft.SnapshotStore
	trans hraft.Transport
	net   peerNet
	fsm   *fsm
	raft  *hraft.Raft
	batch *batcher
	addr  string // the address other nodes reach this one at

	lead     leadership
	notifyCh chan bool

	done      chan struct{} // closed by Close
	raftDone  chan struct{} // closed once raft has shut down
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	mu      sync.Mutex
	failErr error // why the replica stopped applying, if it did
}

// logCacheEntries is how many of the latest raft entries a node keeps in
// memory (raft's LogCache). The leader reads each entry back to replicate
// it to every follower, and a follower to apply it, moments after storing
// it: from the cache that is a pointer copy instead of a read and decode
// of the log segment, with the entry's bytes allocated anew each time.
// Entries are at most MaxBatchBytes (4 MiB by default) and usually tens
// of KiB, so the cache holds a few MiB, 256 MiB at the very worst.
const logCacheEntries = 64

// Open starts a node with its state in cfg.Dir: the local replica, the
// raft log and snapshots. A new node either bootstraps a cluster
// (cfg.Bootstrap) or asks cfg.Join's members to add it, and Open returns
// once it is a member; a node with existing state rejoins its cluster by
// itself. ctx bounds Open (the join in particular), not the node's life.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		logger:   cfg.Logger.With("node", cfg.ID),
		done:     make(chan struct{}),
		raftDone: make(chan struct{}),
		notifyCh: make(chan bool, 16),
	}
	n.lead.changed = make(chan struct{})
	if err := n.open(ctx); err != nil {
		n.release()
		return nil, fmt.Errorf("raft: open node %s in %s: %w", cfg.ID, cfg.Dir, err)
	}
	return n, nil
}

func (n *Node) open(ctx context.Context) error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	var err error
	if n.store, err = n.openReplica(ctx); err != nil {
		return err
	}
	hlog := newHCLogger(n.logger, cfg.RaftLogLevel)
	walDir := filepath.Join(cfg.Dir, "raft")
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return err
	}
	// raft-wal's Close leaves its metadata database open (and locked), so
	// the node owns and closes it.
	n.meta = &metadb.BoltMetaDB{}
	segSize := raftwal.DefaultSegmentSize
	if cfg.walSegmentSize > 0 {
		segSize = cfg.walSegmentSize
	}
	if n.wal, err = raftwal.Open(walDir, raftwal.WithMetaStore(n.meta), raftwal.WithSegmentFiler(segment.NewFiler(walDir, newWALFS())), raftwal.WithSegmentSize(segSize), raftwal.WithLogger(hlog.Named("wal"))); err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	if n.snaps, err = hraft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.SnapshotRetain, hlog.Named("snapshots")); err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	n.fsm = newFSM(n.store, n.logger, n.replicaFailed)
	if err := n.fsm.start(ctx, n.snaps); err != nil {
		return fmt.Errorf("position replica: %w", err)
	}

	if cfg.transport != nil {
		n.trans, n.net = cfg.transport, cfg.net
	} else {
		ln, err := net.Listen("tcp", cfg.Bind)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		var adv net.Addr = ln.Addr()
		if cfg.Advertise != "" {
			if adv, err = net.ResolveTCPAddr("tcp", cfg.Advertise); err != nil {
				ln.Close()
				return fmt.Errorf("advertise address: %w", err)
			}
		}
		m := newMux(ln, adv, cfg.CallTimeout, n.logger)
		m.dial = cfg.Dial
		m.wg.Add(1)
		go m.acceptLoop()
		n.net = m
		n.trans = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
			Stream:  raftLayer{m},
			MaxPool: 4,
			Timeout: cfg.CallTimeout,
			Logger:  hlog.Named("transport"),
		})
	}
	n.addr = string(n.trans.LocalAddr())

	rc := cfg.raftConfig()
	rc.Logger = hlog
	rc.NotifyCh = n.notifyCh
	existing, err := hraft.HasExistingState(n.wal, n.wal, n.snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state: %w", err)
	}
	logs, err := hraft.NewLogCache(logCacheEntries, n.wal)
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	if n.raft, err = hraft.NewRaft(rc, n.fsm, logs, n.wal, n.snaps, n.trans); err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.batch = newBatcher(n.raft, cfg, n.done, n.raftDone)
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.watchLeadership() }()
	go func() { defer n.wg.Done(); n.batch.run() }()
	n.net.serve(n.handle)

	switch {
	case existing:
	case cfg.Bootstrap:
		f := n.raft.BootstrapCluster(hraft.Configuration{Servers: []hraft.Server{
			{Suffrage: hraft.Voter, ID: hraft.ServerID(cfg.ID), Address: hraft.ServerAddress(n.addr)},
		}})
		if err := f.Error(); err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap: %w", err)
		}
	case len(cfg.Join) > 0:
		if err := n.join(ctx); err != nil {
			return err
		}
	}
	return nil
}

// openReplica opens the local replica. Unless cfg.SyncReplica, its writes
// are not synced (the raft log is the write-ahead log), and a replica that a
// machine crash left unreadable is moved aside and started afresh: fsm.start
// and raft's replay rebuild it from the raft snapshot and log, which are
// durable. A replica another process holds open is left alone.
func (n *Node) openReplica(ctx context.Context) (*embedded.Store, error) {
	dir := filepath.Join(n.cfg.Dir, "log")
	opts := []embedded.Option{embedded.WithLogger(n.logger)}
	if !n.cfg.SyncReplica {
		opts = append(opts, embedded.WithFS(noSyncFS{vfs.Default}))
	}
	opts = append(opts, n.cfg.StoreOptions...)
	st, err := embedded.Open(ctx, dir, opts...)
	if err == nil || n.cfg.SyncReplica || ctx.Err() != nil {
		return st, err
	}
	if lock, lerr := vfs.Default.Lock(filepath.Join(dir, "LOCK")); lerr != nil {
		return nil, err // in use (or not even lockable): not ours to rebuild
	} else if cerr := lock.Close(); cerr != nil {
		return nil, errors.Join(err, cerr)
	}
	aside := fmt.Sprintf("%s.damaged-%d", dir, time.Now().Unix())
	n.logger.Warn("raft: the local replica cannot be opened; moving it aside and rebuilding it from the raft snapshot and log",
		"err", err, "moved_to", aside)
	if rerr := os.Rename(dir, aside); rerr != nil {
		return nil, fmt.Errorf("%w (moving it aside to rebuild it: %v)", err, rerr)
	}
	return embedded.Open(ctx, dir, opts...)
}

// join asks the members in cfg.Join, in turn, to add this node, until one
// succeeds or ctx ends.
func (n *Node) join(ctx context.Context) error {
	req := &logbookv1.NodeRequest{Call: &logbookv1.NodeRequest_Join{Join: &logbookv1.JoinRequest{Id: n.cfg.ID, Address: n.addr}}}
	var last error
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		for _, addr := range n.cfg.Join {
			resp, err := n.net.call(ctx, addr, req)
			if err == nil {
				if err = errorFromProto(resp.GetError(), nil); resp.GetError() == nil {
					n.logger.Info("raft: joined the cluster", "via", addr)
					return nil
				}
			}
			last = fmt.Errorf("ask %s: %w", addr, err)
		}
		if err := sleep(ctx, n.done, wait); err != nil {
			return fmt.Errorf("join via %s: %w (last error: %v)", strings.Join(n.cfg.Join, ", "), err, last)
		}
	}
}

// replicaFailed is the fsm's onFail: the node stops.
func (n *Node) replicaFailed(err error) {
	n.mu.Lock()
	n.failErr = err
	n.mu.Unlock()
	go n.Close() // not on the FSM goroutine: Close waits for it
}

// Err returns why the node stopped on its own (its replica failed to apply
// an entry), or nil.
func (n *Node) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.failErr
}

// Done is closed when the node is closed (by Close, or after its replica
// failed).
func (n *Node) Done() <-chan struct{} { return n.done }

// ID returns the node's raft server id.
func (n *Node) ID() string { return n.cfg.ID }

// Addr returns the address other nodes reach this node at (Join takes it).
func (n *Node) Addr() string { return n.addr }

// Store returns the node's event log. It is owned by the node: closing it
// closes the node.
func (n *Node) Store() events.Store { return (*nodeStore)(n) }

// Close leaves the cluster's conversation (it does not remove the node from
// the configuration: see Remove), stops raft, fails appends in flight with
// ErrClosed and closes the replica. It is idempotent and waits for every
// goroutine the node started.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		var errs []error
		if n.raft != nil {
			if err := n.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
			}
		}
		close(n.raftDone)
		n.release()
		n.wg.Wait()
		errs = append(errs, n.closeErr)
		if err := errors.Join(errs...); err != nil {
			n.closeErr = fmt.Errorf("raft: close node %s: %w", n.cfg.ID, err)
		}
	})
	return n.closeErr
}

// release closes what open opened, in reverse order.
func (n *Node) release() {
	var errs []error
	if c, ok := n.trans.(io.Closer); ok {
		errs = append(errs, c.Close())
	}
	if n.net != nil {
		errs = append(errs, n.net.close())
	}
	if n.wal != nil {
		errs = append(errs, n.wal.Close())
	}
	if n.meta != nil {
		errs = append(errs, n.meta.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	n.closeErr = errors.Join(errs...)
}

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// Leader returns the id and address of the leader this node knows, or
// empty strings.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// Join adds the node id reachable at addr as a voter, through the leader.
// Adding a member that is already there with the same address does nothing.
func (n *Node) Join(ctx context.Context, id, addr string) error {
	_, err := n.callLeader(ctx, &logbookv1.NodeRequest{Call: &logbookv1.NodeRequest_Join{Join: &logbookv1.JoinRequest{Id: id, Address: addr}}})
	return err
}

// Remove removes the node id from the cluster, through the leader. A
// leader removing itself steps down once the change commits.
func (n *Node) Remove(ctx context.Context, id string) error {
	_, err := n.callLeader(ctx, &logbookv1.NodeRequest{Call: &logbookv1.NodeRequest_Remove{Remove: &logbookv1.RemoveRequest{Id: id}}})
	return err
}

// TransferLeadership asks the leader to hand leadership to the node id, or
// to the most up-to-date follower when id is empty, and returns once the
// transfer is done.
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	_, err := n.callLeader(ctx, &logbookv1.NodeRequest{Call: &logbookv1.NodeRequest_Transfer{Transfer: &logbookv1.TransferRequest{Id: id}}})
	return err
}

// ReadBarrier returns once this node's replica holds every append that was
// acknowledged, by any node, before the call: the leader confirms it still
// leads (a raft barrier) and names its applied head, and this node waits
// for its replica to reach it. Reads after it see current data (a
// linearizable read). It returns the head the replica reached.
func (n *Node) ReadBarrier(ctx context.Context) (events.Head, error) {
	resp, err := n.callLeader(ctx, &logbookv1.NodeRequest{Call: &logbookv1.NodeRequest_ReadIndex{ReadIndex: &logbookv1.ReadIndexRequest{}}})
	if err != nil {
		return events.Head{}, err
	}
	pos := resp.GetReadIndex().GetPosition()
	if err := n.fsm.waitApplied(ctx, pos, n.done); err != nil {
		return events.Head{}, err
	}
	return n.fsm.headNow(), nil
}

// callLeader sends req to the leader (handling it here when this node
// leads), retrying while there is no leader or it changes, until ctx ends.
func (n *Node) callLeader(ctx context.Context, req *logbookv1.NodeRequest) (*logbookv1.NodeResponse, error) {
	var last error
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		resp, err := n.callLeaderOnce(ctx, req)
		if err == nil {
			return resp, nil
		}
		if !retryable(err) {
			return nil, err
		}
		last = err
		if err := sleep(ctx, n.done, wait); err != nil {
			return nil, fmt.Errorf("raft: %s: %w (last error: %v)", callName(req), err, last)
		}
	}
}

func (n *Node) callLeaderOnce(ctx context.Context, req *logbookv1.NodeRequest) (*logbookv1.NodeResponse, error) {
	select {
	case <-n.done:
		return nil, ErrClosed
	default:
	}
	var resp *logbookv1.NodeResponse
	addr, _ := n.raft.LeaderWithID()
	switch {
	case n.IsLeader():
		resp = n.handle(ctx, req)
	case addr == "":
		return nil, ErrNoLeader
	default:
		var err error
		if resp, err = n.net.call(ctx, string(addr), req); err != nil {
			return nil, &RemoteError{Addr: string(addr), Err: err}
		}
	}
	if resp.GetError() != nil {
		return nil, errorFromProto(resp.GetError(), nil)
	}
	return resp, nil
}

// retryable reports whether a call that failed with err may succeed if
// repeated (on another leader, after an election, on a fresh connection).
// Every call is safe to repeat: appends are idempotent on event ids.
func retryable(err error) bool {
	switch {
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader), errors.Is(err, ErrUnknownOutcome):
		return true
	case deterministic(err), errors.Is(err, ErrDiverged):
		return false
	}
	var re *RemoteError
	if errors.As(err, &re) {
		return true // the peer is unreachable, restarting or closing
	}
	return errors.Is(err, ErrClosed) && !isClosedLocally(err)
}

// errLocalClosed marks ErrClosed coming from this node rather than a peer.
var errLocalClosed = fmt.Errorf("%w: this node", ErrClosed)

func isClosedLocally(err error) bool { return errors.Is(err, errLocalClosed) }

func callName(req *logbookv1.NodeRequest) string {
	switch req.GetCall().(type) {
	case *logbookv1.NodeRequest_Append:
		return "append to " + req.GetAppend().GetAppend().GetStream()
	case *logbookv1.NodeRequest_Join:
		return "join " + req.GetJoin().GetId()
	case *logbookv1.NodeRequest_Remove:
		return "remove " + req.GetRemove().GetId()
	case *logbookv1.NodeRequest_Transfer:
		return "transfer leadership"
	case *logbookv1.NodeRequest_ReadIndex:
		return "read barrier"
	case *logbookv1.NodeRequest_Status:
		return "status"
	}
	return "call"
}

// sleep waits d, or fails when ctx or done ends first.
func sleep(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return errLocalClosed
	}
}

// handle answers a node-to-node call (or one this node makes to itself as
// the leader).
func (n *Node) handle(ctx context.Context, req *logbookv1.NodeRequest) *logbookv1.NodeResponse {
	leaderAddr, _ := n.raft.LeaderWithID()
	fail := func(err error) *logbookv1.NodeResponse {
		return &logbookv1.NodeResponse{Error: errorToProto(err, string(leaderAddr))}
	}
	notLeader := func() *logbookv1.NodeResponse {
		return fail(fmt.Errorf("%w: node %s (leader: %q)", ErrNotLeader, n.cfg.ID, leaderAddr))
	}
	select {
	case <-n.done:
		return fail(ErrClosed)
	default:
	}
	// Membership, transfer and read-barrier calls that reach a follower
	// are forwarded once to the leader it knows (a joining node may only
	// know a follower's address). Appends are not: the appender retries
	// against the leader itself, and waits for its own replica.
	switch req.GetCall().(type) {
	case *logbookv1.NodeRequest_Join, *logbookv1.NodeRequest_Remove, *logbookv1.NodeRequest_Transfer, *logbookv1.NodeRequest_ReadIndex:
		if !n.IsLeader() {
			if leaderAddr == "" || string(leaderAddr) == n.addr {
				return notLeader()
			}
			resp, err := n.net.call(ctx, string(leaderAddr), req)
			if err != nil {
				return fail(fmt.Errorf("%w: forward %s to %s: %v", ErrNoLeader, callName(req), leaderAddr, err))
			}
			return resp
		}
	}
	switch c := req.GetCall().(type) {
	case *logbookv1.NodeRequest_Append:
		if !n.IsLeader() {
			return notLeader()
		}
		call, err := decodeAppend(c.Append.GetAppend())
		if err == nil {
			err = events.ValidateAppend(call.stream, call.events)
		}
		if err != nil {
			return fail(err)
		}
		enc := appendWireAppend(nil, call.stream, call.expect, call.events)
		r := n.batch.submit(ctx, enc, len(call.events))
		if r.err != nil && !deterministic(r.err) {
			return fail(r.err)
		}
		resp := &logbookv1.ForwardAppendResponse{AppliedPosition: r.head.Position}
		if r.err != nil {
			out := fail(r.err)
			out.Result = &logbookv1.NodeResponse_Append{Append: resp}
			return out
		}
		resp.Result = resultToProto(r.res)
		return &logbookv1.NodeResponse{Result: &logbookv1.NodeResponse_Append{Append: resp}}
	case *logbookv1.NodeRequest_Join:
		if !n.IsLeader() {
			return notLeader()
		}
		if c.Join.GetId() == "" || c.Join.GetAddress() == "" {
			return fail(errors.New("join: id and address are required"))
		}
		f := n.raft.AddVoter(hraft.ServerID(c.Join.GetId()), hraft.ServerAddress(c.Join.GetAddress()), 0, n.cfg.CallTimeout)
		if err := f.Error(); err != nil {
			return fail(fmt.Errorf("add voter %s at %s: %w", c.Join.GetId(), c.Join.GetAddress(), translateRaftError(err)))
		}
		n.logger.Info("raft: added voter", "id", c.Join.GetId(), "addr", c.Join.GetAddress())
		return &logbookv1.NodeResponse{}
	case *logbookv1.NodeRequest_Remove:
		if !n.IsLeader() {
			return notLeader()
		}
		if err := n.raft.RemoveServer(hraft.ServerID(c.Remove.GetId()), 0, n.cfg.CallTimeout).Error(); err != nil {
			return fail(fmt.Errorf("remove server %s: %w", c.Remove.GetId(), translateRaftError(err)))
		}
		n.logger.Info("raft: removed server", "id", c.Remove.GetId())
		return &logbookv1.NodeResponse{}
	case *logbookv1.NodeRequest_Transfer:
		if !n.IsLeader() {
			return notLeader()
		}
		var f hraft.Future
		if id := c.Transfer.GetId(); id == "" {
			f = n.raft.LeadershipTransfer()
		} else {
			if id == n.cfg.ID {
				return &logbookv1.NodeResponse{} // already leads
			}
			addr, err := n.serverAddress(id)
			if err != nil {
				return fail(err)
			}
			f = n.raft.LeadershipTransferToServer(hraft.ServerID(id), addr)
		}
		if err := f.Error(); err != nil {
			return fail(fmt.Errorf("transfer leadership: %w", err))
		}
		return &logbookv1.NodeResponse{}
	case *logbookv1.NodeRequest_ReadIndex:
		if !n.IsLeader() {
			return notLeader()
		}
		if err := n.raft.Barrier(n.cfg.CallTimeout).Error(); err != nil {
			return fail(translateRaftError(err))
		}
		return &logbookv1.NodeResponse{Result: &logbookv1.NodeResponse_ReadIndex{ReadIndex: &logbookv1.ReadIndexResponse{Position: n.fsm.headNow().Position}}}
	case *logbookv1.NodeRequest_Status:
		return &logbookv1.NodeResponse{Result: &logbookv1.NodeResponse_Status{Status: n.localStatus()}}
	}
	return fail(fmt.Errorf("unknown call %T", req.GetCall()))
}

// serverAddress returns the address of server id in the configuration.
func (n *Node) serverAddress(id string) (hraft.ServerAddress, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return "", err
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return s.Address, nil
		}
	}
	return "", fmt.Errorf("server %s is not a member", id)
}

// newHCLogger adapts l for raft: raft's lines at level and above go to l.
func newHCLogger(l *slog.Logger, level string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.LevelFromString(level),
		Output: slogWriter{l},
	})
}

// slogWriter logs each line hclog writes.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	lvl := slog.LevelInfo
	switch {
	case strings.Contains(line, "[ERROR]"):
		lvl = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		lvl = slog.LevelWarn
	case strings.Contains(line, "[DEBUG]"), strings.Contains(line, "[TRACE]"):
		lvl = slog.LevelDebug
	}
	w.l.Log(context.Background(), lvl, line)
	return len(p), nil
}
