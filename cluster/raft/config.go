package raft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/logbook-fleet/logbook/events/embedded"
)

// Config configures a Node. Start from DefaultConfig and set ID, Dir, Bind
// and one of Bootstrap or Join.
type Config struct {
	// ID names the node in the raft configuration. It must be unique in
	// the cluster and stay the same across restarts.
	ID string
	// Dir holds the node's whole state:
	//
	//	<Dir>/raft/       raft-wal: the raft log and stable store
	//	<Dir>/snapshots/  raft snapshots (the event log up to a position)
	//	<Dir>/log/        the local replica (events/embedded)
	Dir string
	// Bind is the TCP address the node listens on, raft and node-to-node
	// calls multiplexed on one port ("127.0.0.1:7400"; port 0 picks one).
	Bind string
	// Advertise is the address other nodes dial; empty means the address
	// the listener got.
	Advertise string
	// Bootstrap creates a new cluster with this node as its only voter when
	// Dir holds no raft state. Set it on exactly one node of a new cluster.
	Bootstrap bool
	// Join lists addresses of existing members. When Dir holds no raft
	// state, Open asks them in turn (each forwards to the leader) to add
	// this node as a voter, until one succeeds or Open's context ends.
	Join []string

	// Raft timing; see hashicorp/raft's Config. The defaults suit a LAN.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout bounds how long followers wait to learn that entries
	// committed when no new entries come; it also bounds how long a
	// forwarded append waits for the follower's replica to catch up.
	CommitTimeout time.Duration
	// MaxAppendEntries is the most raft entries per replication RPC and
	// per leader disk write (at most 1024).
	MaxAppendEntries int
	// SnapshotInterval and SnapshotThreshold: how often raft checks, and
	// how many new entries it needs, to snapshot and compact its log. A
	// snapshot copies the whole event log, so the threshold is high.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many entries stay in the raft log after a
	// snapshot, so that a briefly absent follower catches up from the log
	// instead of a snapshot.
	TrailingLogs uint64
	// SnapshotRetain is how many raft snapshots are kept on disk.
	SnapshotRetain int

	// Group commit on the leader: concurrent appends are packed into one
	// raft entry of at most MaxBatchEvents events and MaxBatchBytes of
	// payload, with at most MaxInflight entries proposed and not yet
	// applied. Appends that arrive while MaxInflight entries are in flight
	// wait and form the next entry.
	MaxBatchEvents int
	MaxBatchBytes  int
	MaxInflight    int

	// CallTimeout bounds one node-to-node call (a forwarded append, a
	// join, a status query).
	CallTimeout time.Duration

	// Dial opens the connections this node makes to other nodes, for
	// raft's stream and for node-to-node calls alike, to addr as it
	// appears in the raft configuration or in Join. ctx bounds the dial
	// only (raft's transport timeout or CallTimeout), never the
	// connection. Nil dials plain TCP. Set it to reach peers through a
	// tunnel, or in tests through proxies that cut the network between
	// nodes.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// Logger receives the node's and raft's logs. RaftLogLevel filters
	// raft's own ("debug", "info", "warn", "error"; default "warn").
	Logger       *slog.Logger
	RaftLogLevel string

	// SyncReplica makes the local replica fsync its own log too. By
	// default it does not: the raft log (fsynced on a quorum before an
	// append is acknowledged) is the write-ahead log, and the replica is
	// rebuilt from the raft snapshot and log when a machine crash left it
	// behind or torn (see Open). Syncing it costs a third fsync on the
	// path of every append.
	SyncReplica bool

	// StoreOptions are passed to embedded.Open for the local replica,
	// after the node's own (so they may override them).
	StoreOptions []embedded.Option

	// Now stamps appended events that carry no time. Default time.Now.
	Now func() time.Time

	// transport and net replace the TCP transport in in-process tests.
	transport hraft.Transport
	net       peerNet
	// walSegmentSize overrides raft-wal's segment size (64 MiB) in tests:
	// compaction only deletes whole segments.
	walSegmentSize int
}

// DefaultConfig returns a Config tuned for nodes on one LAN, without ID, Dir,
// Bind, Bootstrap or Join.
//
// Why these values: heartbeat and election timeouts of 500 ms (raft's
// defaults are 1 s) elect a new leader within about a second of losing one,
// well inside the 3 s failover budget, while a loaded 2-core node still
// answers heartbeats in time. MaxInflight 2 measured best on loopback
// (test/bench raft-append, with entries taking an equal share of the
// outstanding appends, see batcher.share): 3 nodes 31-37k events/s over
// four interleaved runs, against 18-34k with 3 and 28-34k with 4; more
// entries in flight split the writers into smaller entries that each pay
// the same raft round trip. CommitTimeout of 5 ms lets followers learn of
// commits quickly when the load is light (forwarded appends wait for the
// follower's own replica). MaxAppendEntries 512 with BatchApplyCh lets one
// disk write and one replication RPC carry many group-committed entries.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		MaxAppendEntries:   512,
		SnapshotInterval:   2 * time.Minute,
		SnapshotThreshold:  131072,
		TrailingLogs:       10240,
		SnapshotRetain:     2,
		MaxBatchEvents:     4096,
		MaxBatchBytes:      4 << 20,
		MaxInflight:        2,
		CallTimeout:        10 * time.Second,
		RaftLogLevel:       "warn",
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ID == "" {
		bad("ID is empty")
	}
	if c.Dir == "" {
		bad("Dir is empty")
	}
	if c.Bind == "" && c.transport == nil {
		bad("Bind is empty")
	}
	if c.Bootstrap && len(c.Join) > 0 {
		bad("Bootstrap and Join are exclusive")
	}
	if c.MaxBatchEvents < 1 {
		bad("MaxBatchEvents %d: must be at least 1", c.MaxBatchEvents)
	}
	if c.MaxBatchBytes < 1 {
		bad("MaxBatchBytes %d: must be at least 1", c.MaxBatchBytes)
	}
	if c.MaxInflight < 1 {
		bad("MaxInflight %d: must be at least 1", c.MaxInflight)
	}
	if c.CallTimeout <= 0 {
		bad("CallTimeout %v: must be positive", c.CallTimeout)
	}
	if c.SnapshotRetain < 1 {
		bad("SnapshotRetain %d: must be at least 1", c.SnapshotRetain)
	}
	if err := hraft.ValidateConfig(c.raftConfig()); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raft: invalid config: %w", err)
	}
	return nil
}

func (c Config) raftConfig() *hraft.Config {
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(c.ID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.MaxAppendEntries = c.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	// The local replica is durable and positioned by the FSM itself (see
	// fsm.go); restoring the snapshot on every start would copy the
	// whole log for nothing.
	rc.NoSnapshotRestoreOnStart = true
	if rc.LocalID == "" {
		rc.LocalID = "unset" // reported by Validate
	}
	return rc
}
