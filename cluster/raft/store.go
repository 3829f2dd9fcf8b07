package raft

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// nodeStore is a Node's events.Store.
//
// Append goes through raft and returns once the append committed, was
// applied by the leader (which decides the expected version) and reached
// this node's replica, so the caller reads its own writes from this node.
// Reads, Head, Verify and Subscribe are served by the local replica: a
// follower may be behind the leader by what is in flight; Node.ReadBarrier
// waits until it is not.
//
// Snapshots (SaveSnapshot, LoadSnapshot) stay local to each node. They are
// caches of folded state beside the log, rebuildable from it, and the
// entity host that writes them runs on the leader; replicating them would
// put every snapshot write through raft for no gain in what survives. A new
// leader starts with the snapshots it had (or none) and recovers entities
// from the log.
type nodeStore Node

var _ events.Store = (*nodeStore)(nil)

func (s *nodeStore) node() *Node { return (*Node)(s) }

// Append implements events.Store. Events are validated and stamped with
// this node's clock here, then proposed (on the leader) or forwarded to
// the leader. While there is no leader, or leadership changes with the
// append in flight, Append retries until ctx ends: retries are safe
// because an append whose ids are already in the log at the same place
// returns the original result.
func (s *nodeStore) Append(ctx context.Context, stream string, expect events.Expect, evs ...events.Event) (events.AppendResult, error) {
	n := s.node()
	select {
	case <-n.done:
		return events.AppendResult{}, events.ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return events.AppendResult{}, err
	}
	prepared, err := events.PrepareAppend(stream, evs, n.cfg.Now())
	if err != nil {
		return events.AppendResult{}, err
	}
	call := appendCall{stream: stream, expect: expect, events: prepared}
	enc := appendWireAppend(nil, stream, expect, prepared)
	var last error
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		res, applied, err := n.appendOnce(ctx, enc, &call)
		if err == nil || !retryable(err) {
			if applied > 0 {
				// Read your writes (and the conflicting version) here. If
				// ctx ends first, the append still stands.
				_ = n.fsm.waitApplied(ctx, applied, n.done)
			}
			return res, err
		}
		last = err
		if err := sleep(ctx, n.done, wait); err != nil {
			if errors.Is(err, ErrClosed) {
				return events.AppendResult{}, events.ErrClosed
			}
			return events.AppendResult{}, fmt.Errorf("raft: append to %s: %w: %w (last error: %v)", stream, ErrUnknownOutcome, err, last)
		}
	}
}

// appendOnce makes one attempt: through this node's batcher when it leads,
// else forwarded to the leader it knows. It returns the applied position
// the caller should wait for.
func (n *Node) appendOnce(ctx context.Context, enc []byte, call *appendCall) (events.AppendResult, uint64, error) {
	if n.IsLeader() {
		r := n.batch.submit(ctx, enc, len(call.events))
		if errors.Is(r.err, ErrClosed) {
			select {
			case <-n.done:
				return events.AppendResult{}, 0, events.ErrClosed
			default:
			}
		}
		return r.res, r.head.Position, r.err
	}
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return events.AppendResult{}, 0, ErrNoLeader
	}
	msg := encodeAppend(call.stream, call.expect, call.events)
	req := &logbookv1.NodeRequest{Call: &logbookv1.NodeRequest_Append{Append: &logbookv1.ForwardAppendRequest{Append: msg}}}
	resp, err := n.net.call(ctx, string(addr), req)
	if err != nil {
		if ctx.Err() != nil {
			return events.AppendResult{}, 0, fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
		}
		return events.AppendResult{}, 0, &RemoteError{Addr: string(addr), Err: err}
	}
	applied := resp.GetAppend().GetAppliedPosition()
	if resp.GetError() != nil {
		return events.AppendResult{}, applied, errorFromProto(resp.GetError(), call)
	}
	res, err := resultFromProto(resp.GetAppend().GetResult())
	if err != nil {
		return events.AppendResult{}, 0, &RemoteError{Addr: string(addr), Err: err}
	}
	return res, applied, nil
}

// ReadStream implements events.Store from the local replica.
func (s *nodeStore) ReadStream(ctx context.Context, stream string, fromVersion uint64) iter.Seq2[events.Event, error] {
	return s.store.ReadStream(ctx, stream, fromVersion)
}

// ReadAll implements events.Store from the local replica.
func (s *nodeStore) ReadAll(ctx context.Context, fromPosition uint64, filter events.Filter) iter.Seq2[events.Event, error] {
	return s.store.ReadAll(ctx, fromPosition, filter)
}

// Subscribe implements events.Store from the local replica: events arrive
// as this node applies them.
func (s *nodeStore) Subscribe(ctx context.Context, fromPosition uint64, filter events.Filter) iter.Seq2[events.Event, error] {
	return s.store.Subscribe(ctx, fromPosition, filter)
}

// Head implements events.Store: the local replica's head.
func (s *nodeStore) Head(ctx context.Context) (events.Head, error) { return s.store.Head(ctx) }

// SaveSnapshot implements events.Store, locally (see the type's comment).
func (s *nodeStore) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	return s.store.SaveSnapshot(ctx, snap)
}

// LoadSnapshot implements events.Store, locally.
func (s *nodeStore) LoadSnapshot(ctx context.Context, stream string) (events.Snapshot, error) {
	return s.store.LoadSnapshot(ctx, stream)
}

// Verify implements events.Store on the local replica.
func (s *nodeStore) Verify(ctx context.Context) (events.Head, error) { return s.store.Verify(ctx) }

// VerifyProgress is Verify reporting progress, as the embedded store does.
func (s *nodeStore) VerifyProgress(ctx context.Context, progress func(verified events.Head)) (events.Head, error) {
	return s.store.VerifyProgress(ctx, progress)
}

// Close closes the node.
func (s *nodeStore) Close() error { return s.node().Close() }
