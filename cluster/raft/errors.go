package raft

import (
	"errors"
	"fmt"

	"github.com/logbook-fleet/logbook/events"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrNotLeader: the call needs the leader and this node is not it (and
	// could not forward to it).
	ErrNotLeader = errors.New("not the raft leader")
	// ErrNoLeader: the cluster has no leader this node knows of (an
	// election is under way, or this node is cut off from a quorum).
	ErrNoLeader = errors.New("no raft leader")
	// ErrUnknownOutcome: an append was proposed but leadership was lost
	// before it was known to commit. Retrying with the same event ids
	// tells: it returns the original result if the append did commit.
	// Node.Store's Append retries by itself until its context ends.
	ErrUnknownOutcome = errors.New("append outcome unknown")
	// ErrClosed: the node was closed. It wraps events.ErrClosed.
	ErrClosed = fmt.Errorf("raft node closed: %w", events.ErrClosed)
	// ErrDiverged: the local event log is not a prefix of the cluster's;
	// the node refuses to serve it. Remove its data directory and join
	// again.
	ErrDiverged = errors.New("local event log diverged from the cluster")
)

// RemoteError is an error a peer returned to a node-to-node call.
type RemoteError struct {
	// Addr is the peer's address.
	Addr string
	Err  error
}

func (e *RemoteError) Error() string { return fmt.Sprintf("node %s: %v", e.Addr, e.Err) }

// Unwrap returns the peer's error, translated to events' and this
// package's sentinels where they apply.
func (e *RemoteError) Unwrap() error { return e.Err }
