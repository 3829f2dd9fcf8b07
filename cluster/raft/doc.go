// Package raft replicates Logbook's event log across 1, 3 or 5
// control-plane nodes with hashicorp/raft.
//
// Every node keeps a full replica of the log in an embedded store
// (events/embedded). An append travels as a raft entry: the node that takes
// the call validates the events and stamps their times, the leader packs
// concurrent appends into one entry (group commit), and once the entry
// commits each replica applies its appends in order, checking each one's
// expected version inside Apply. Replicas therefore hold the same events
// at the same positions with the same hashes, and a deposed leader's
// appends, decided on stale state, fail the check instead of forking a
// stream.
//
//	cfg := raft.DefaultConfig()
//	cfg.ID, cfg.Dir, cfg.Bind = "cp1", "/var/lib/logbook", "10.0.0.1:7400"
//	cfg.Bootstrap = true // on one node of a new cluster; the others set cfg.Join
//	node, err := raft.Open(ctx, cfg)
//	if err != nil { ... }
//	defer node.Close()
//
//	store := node.Store() // an events.Store: hand it to projections, the API, ...
//	go node.RunAsLeader(ctx, func(ctx context.Context) error {
//		// entity host, command dispatcher, NATS bridge: only on the leader
//		<-ctx.Done()
//		return nil
//	})
//
// # The Store
//
// Append goes through raft from any node (a follower forwards to the
// leader) and returns once the leader applied it and this node's replica
// holds it, so a caller reads its own writes. Reads, Subscribe, Head and
// Verify are served by the local replica; Node.ReadBarrier first catches it
// up with everything acknowledged anywhere. Entity snapshots
// (SaveSnapshot) stay local to each node: they are caches rebuildable from
// the log, written by the leader's entity host. While there is no leader
// Append waits and retries until its context ends; retries are safe because
// appends are idempotent on event ids.
//
// # Durability and restarts
//
// An append is acknowledged once its entry is in the raft logs (raft-wal,
// fsynced) of a quorum. The raft log is the replica's write-ahead log:
// unless Config.SyncReplica is set, the replica does not fsync, and a node
// starting after a machine crash rebuilds a torn or lost replica from its
// raft snapshot and log. On a normal restart the replica is kept, and the
// raft entries after the latest snapshot are replayed without applying
// anything twice (see the fsm type). A raft snapshot is the whole log up to
// a position; a follower that installs one completes its replica from it.
//
// # Network
//
// One TCP port per node carries raft's RPCs and the node-to-node calls
// (forwarded appends, join, remove, leadership transfer, read barrier,
// status), told apart by the connection's first byte; calls are
// length-prefixed protobuf messages (proto/logbook/v1/cluster.proto).
package raft
