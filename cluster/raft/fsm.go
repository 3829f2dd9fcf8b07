package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
)

// fsm applies committed raft entries to the node's local replica.
//
// # Exactly once across restarts
//
// The replica is durable on its own, so raft does not restore a snapshot
// when a node starts (NoSnapshotRestoreOnStart): it replays the entries
// after its latest snapshot, some of which the replica already holds. The
// fsm tells them apart without storing raft indexes in the log. It knows
// the log's head at the snapshot (the snapshot's header) and at start
// (storeEnd), and entries are applied in order; so while its head is below
// storeEnd, the next append of a replayed entry was applied before exactly
// when the event at head+1 carries the append's first id. Appends that
// failed the first time left nothing in the log and are skipped: applying
// them again could succeed now (an Exactly(v) that failed because the
// stream was behind v) and fork the replica from the others. Once the head
// reaches storeEnd, the replica is exactly as it was when the entry being
// replayed was first applied, and entries apply normally.
//
// Replicas never stamp events (times and ids come in the entry), and the
// embedded store decides a batch's appends in order, so every replica
// reaches the same positions and hashes.
type fsm struct {
	store  *embedded.Store
	logger *slog.Logger
	onFail func(error) // called once when the replica can no longer apply

	// storeEnd is the log's head when the node started or last restored a
	// snapshot; below it, entries are being replayed. Owned by raft's FSM
	// goroutine (Apply, Snapshot and Restore are never concurrent).
	storeEnd uint64

	// restores counts snapshots installed from the leader; replayed
	// counts appends settled by replay (see above). For tests and status.
	restores, replayed atomic.Int64

	// Scratch of ApplyBatch, reused from one call to the next (raft's
	// FSM goroutine makes them one at a time).
	batch []embedded.BatchAppend
	slots []applySlot
	resps []*applyResponse

	mu      sync.Mutex
	head    events.Head   // the log as applied so far
	changed chan struct{} // closed and replaced whenever head moves
	failed  error
}

var (
	_ hraft.BatchingFSM = (*fsm)(nil)
	_ hraft.FSM         = (*fsm)(nil)
)

// applySlot is where the result of one append of an AppendBatch goes:
// the i-th result of its entry's response.
type applySlot struct {
	resp *applyResponse
	i    int
}

// applyResponse is what the fsm returns for one entry: a result per append,
// in order, and the head once the entry was applied.
type applyResponse struct {
	results []embedded.BatchResult
	head    events.Head
}

func newFSM(store *embedded.Store, logger *slog.Logger, onFail func(error)) *fsm {
	return &fsm{store: store, logger: logger, onFail: onFail, changed: make(chan struct{})}
}

// start positions the fsm before raft starts: at the head of the latest
// local snapshot, completing the replica from it first if the replica is
// shorter (its directory was lost or damaged).
func (f *fsm) start(ctx context.Context, snaps hraft.SnapshotStore) error {
	local, err := f.store.Head(ctx)
	if err != nil {
		return err
	}
	var head events.Head
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) > 0 {
		_, rc, err := snaps.Open(metas[0].ID)
		if err != nil {
			return fmt.Errorf("open snapshot %s: %w", metas[0].ID, err)
		}
		sr, err := newSnapshotReader(rc)
		if err == nil {
			head = sr.head
			err = f.catchUp(ctx, sr, local)
		}
		if cerr := rc.Close(); err == nil && cerr != nil && local.Position < head.Position {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", metas[0].ID, err)
		}
	}
	f.storeEnd = max(local.Position, head.Position)
	f.setHead(head)
	return nil
}

// Apply implements hraft.FSM.
func (f *fsm) Apply(l *hraft.Log) any { return f.ApplyBatch([]*hraft.Log{l})[0] }

// ApplyBatch implements hraft.BatchingFSM: it applies the appends of every
// command entry, in order, with one AppendBatch (one sync) for them all.
func (f *fsm) ApplyBatch(logs []*hraft.Log) []any {
	out := make([]any, len(logs))
	if err := f.failure(); err != nil {
		for i := range out {
			out[i] = err
		}
		return out
	}
	ctx := context.Background()
	batch, slots, resps := f.batch[:0], f.slots[:0], f.resps[:0]
	defer func() {
		// Keep the scratch, not what it points to.
		clear(batch)
		clear(slots)
		clear(resps)
		f.batch, f.slots, f.resps = batch[:0], slots[:0], resps[:0]
	}()
	for i, l := range logs {
		if l.Type != hraft.LogCommand {
			continue
		}
		decoded, err := decodeCommand(l.Data)
		if err != nil {
			// Every replica fails the same way on the same bytes.
			out[i] = fmt.Errorf("raft: decode entry %d: %w", l.Index, err)
			continue
		}
		resp := &applyResponse{results: make([]embedded.BatchResult, len(decoded))}
		out[i] = resp
		resps = append(resps, resp)
		for j, d := range decoded {
			if d.err != nil {
				resp.results[j].Err = d.err
				continue
			}
			if f.replaying() {
				if err := f.replay(ctx, d.call, &resp.results[j]); err != nil {
					return f.fatal(out, fmt.Errorf("replay entry %d: %w", l.Index, err))
				}
				resp.head = f.headNow()
				continue
			}
			batch = append(batch, embedded.BatchAppend{Stream: d.call.stream, Expect: d.call.expect, Events: d.call.events})
			slots = append(slots, applySlot{resp, j})
		}
	}
	if len(batch) > 0 {
		results, err := f.store.AppendBatch(ctx, batch)
		if err != nil {
			return f.fatal(out, fmt.Errorf("apply: %w", err))
		}
		head := f.headNow()
		for k, r := range results {
			if r.Err != nil && !deterministic(r.Err) {
				return f.fatal(out, fmt.Errorf("apply: %w", r.Err))
			}
			slots[k].resp.results[slots[k].i] = r
			if r.Err == nil && r.Result.LastPosition > head.Position {
				head = events.Head{Position: r.Result.LastPosition, Hash: r.Result.Hash}
			}
		}
		f.setHead(head)
	}
	head := f.headNow()
	for _, r := range resps {
		r.head = head
	}
	return out
}

// deterministic reports whether err is a decision every replica makes alike,
// rather than a failure of this replica.
func deterministic(err error) bool {
	return errors.Is(err, events.ErrWrongExpectedVersion) || errors.Is(err, events.ErrDuplicateEventID) ||
		errors.Is(err, events.ErrInvalidEvent) || errors.Is(err, events.ErrInvalidStreamName)
}

// errReplayed is the outcome of an append that failed before a restart and
// is skipped when its entry is replayed; no caller waits for it.
var errReplayed = errors.New("raft: append skipped on replay: it was decided before the node restarted")

func (f *fsm) replaying() bool { return f.headNow().Position < f.storeEnd }

// replay settles an append of a replayed entry; see the type's comment.
func (f *fsm) replay(ctx context.Context, call appendCall, res *embedded.BatchResult) error {
	f.replayed.Add(1)
	head := f.headNow()
	got, err := readRange(ctx, f.store, head.Position+1, len(call.events))
	if err != nil {
		return err
	}
	if len(got) == 0 || got[0].ID != call.events[0].ID {
		res.Err = errReplayed
		return nil
	}
	if len(got) < len(call.events) {
		return fmt.Errorf("%w: append to %s of %d events is cut short at position %d", ErrDiverged, call.stream, len(call.events), got[len(got)-1].Position)
	}
	for i, ev := range got {
		if ev.ID != call.events[i].ID || ev.Stream != call.stream {
			return fmt.Errorf("%w: position %d holds event %s of %s, the replayed append has %s of %s",
				ErrDiverged, ev.Position, ev.ID, ev.Stream, call.events[i].ID, call.stream)
		}
	}
	first, last := got[0], got[len(got)-1]
	res.Result = events.AppendResult{
		FirstVersion: first.Version, LastVersion: last.Version,
		FirstPosition: first.Position, LastPosition: last.Position, Hash: last.Hash,
	}
	f.setHead(events.Head{Position: last.Position, Hash: last.Hash})
	return nil
}

// readRange reads up to n events of st's log from position from.
func readRange(ctx context.Context, st events.Store, from uint64, n int) ([]events.Event, error) {
	out := make([]events.Event, 0, n)
	if n == 0 {
		return out, nil
	}
	for ev, err := range st.ReadAll(ctx, from, events.Filter{}) {
		if err != nil {
			return nil, fmt.Errorf("read log at position %d: %w", from+uint64(len(out)), err)
		}
		out = append(out, ev)
		if len(out) == n {
			break
		}
	}
	return out, nil
}

// fatal puts the fsm in the failed state: the replica could not apply an
// entry every other replica applies, so it must not apply anything after
// it. The node shuts down; on restart it replays from its last snapshot.
func (f *fsm) fatal(out []any, err error) []any {
	f.mu.Lock()
	first := f.failed == nil
	if first {
		f.failed = err
	}
	f.mu.Unlock()
	if first {
		f.logger.Error("raft: replica failed; the node stops", "err", err)
		if f.onFail != nil {
			f.onFail(err)
		}
	}
	for i := range out {
		out[i] = err
	}
	return out
}

func (f *fsm) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// Snapshot implements hraft.FSM.
func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	if err := f.failure(); err != nil {
		return nil, err
	}
	return &fsmSnapshot{store: f.store, head: f.headNow()}, nil
}

// Restore implements hraft.FSM: raft installs a snapshot from the leader
// because this node is too far behind for the leader's log. The replica is
// a prefix of the cluster's log, so it is completed from the snapshot
// rather than rebuilt: subscribers keep their place.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	ctx := context.Background()
	sr, err := newSnapshotReader(rc)
	if err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	local, err := f.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	if err := f.catchUp(ctx, sr, local); err != nil {
		return fmt.Errorf("raft: restore snapshot at position %d: %w", sr.head.Position, err)
	}
	f.storeEnd = max(local.Position, sr.head.Position)
	f.setHead(sr.head)
	f.restores.Add(1)
	f.logger.Info("raft: installed a snapshot from the leader", "head", sr.head.Position, "local", local.Position)
	return nil
}

// catchUp checks that the replica, whose head is local, and the snapshot
// agree where they overlap, and appends the snapshot's events the replica
// lacks.
func (f *fsm) catchUp(ctx context.Context, sr *snapshotReader, local events.Head) error {
	if local.Position >= sr.head.Position {
		if sr.head.Position == 0 {
			return nil
		}
		got, err := readRange(ctx, f.store, sr.head.Position, 1)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Hash != sr.head.Hash {
			return fmt.Errorf("%w: hash at position %d differs from the snapshot's", ErrDiverged, sr.head.Position)
		}
		return nil
	}
	const flushEvents = 8192
	var (
		batch   []embedded.BatchAppend
		lastOf  []events.Event // the snapshot's last event of each batch append
		pending int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, err := f.store.AppendBatch(ctx, batch)
		if err != nil {
			return err
		}
		for k, r := range results {
			if r.Err != nil {
				return fmt.Errorf("append from snapshot: %w", r.Err)
			}
			if want := lastOf[k]; r.Result.LastPosition != want.Position || r.Result.Hash != want.Hash {
				return fmt.Errorf("%w: appending the snapshot's events up to position %d gave position %d, hash %s; the snapshot has hash %s",
					ErrDiverged, want.Position, r.Result.LastPosition, r.Result.Hash, want.Hash)
			}
		}
		batch, lastOf, pending = batch[:0], lastOf[:0], 0
		return nil
	}
	for {
		ev, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if ev.Position < local.Position {
			continue
		}
		if ev.Position == local.Position {
			if ev.Hash != local.Hash {
				return fmt.Errorf("%w: hash at position %d differs from the snapshot's", ErrDiverged, ev.Position)
			}
			continue
		}
		in := ev // what the appender chose; the store assigns the rest again
		in.Version, in.Position, in.PrevHash, in.Hash = 0, 0, events.Hash{}, events.Hash{}
		if n := len(batch); n > 0 && batch[n-1].Stream == ev.Stream && lastOf[n-1].Version+1 == ev.Version {
			batch[n-1].Events = append(batch[n-1].Events, in)
			lastOf[n-1] = ev
		} else {
			batch = append(batch, embedded.BatchAppend{Stream: ev.Stream, Expect: events.Exactly(ev.Version - 1), Events: []events.Event{in}})
			lastOf = append(lastOf, ev)
		}
		if pending++; pending >= flushEvents {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (f *fsm) headNow() events.Head {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head
}

func (f *fsm) setHead(h events.Head) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h != f.head {
		f.head = h
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

// waitApplied returns once the applied head reaches pos, or fails when ctx
// or done ends first.
func (f *fsm) waitApplied(ctx context.Context, pos uint64, done <-chan struct{}) error {
	for {
		f.mu.Lock()
		h, ch, failed := f.head, f.changed, f.failed
		f.mu.Unlock()
		if h.Position >= pos {
			return nil
		}
		if failed != nil {
			return failed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("raft: wait for the local replica to reach position %d (at %d): %w", pos, h.Position, ctx.Err())
		case <-done:
			return ErrClosed
		}
	}
}
