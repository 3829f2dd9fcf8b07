package embedded

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// SaveSnapshot implements events.Store. Snapshots are kept in the index
// without a sync of their own: a crash may lose the latest ones, which is
// always safe.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if s.closed.Load() {
		return events.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := events.ValidateStream(snap.Stream); err != nil {
		return err
	}
	if snap.Version == 0 {
		return fmt.Errorf("%w: snapshot of %s at version 0", events.ErrInvalidEvent, snap.Stream)
	}
	pending := s.view().pendingVersion(snap.Stream)
	if !s.acquire() {
		return events.ErrClosed
	}
	defer s.res.RUnlock()
	cur, err := s.indexedStreamVersion(snap.Stream)
	cur = max(cur, pending)
	if err != nil {
		return fmt.Errorf("embedded: save snapshot: %w", err)
	}
	if snap.Version > cur {
		return fmt.Errorf("%w: snapshot of %s at version %d, but the stream is at version %d",
			events.ErrInvalidEvent, snap.Stream, snap.Version, cur)
	}
	v, err := proto.Marshal(&logbookv1.Snapshot{
		Stream: snap.Stream, Version: snap.Version, Type: snap.Type, State: snap.State,
		Time: timestamppb.New(snap.Time),
	})
	if err != nil {
		return fmt.Errorf("embedded: encode snapshot: %w", err)
	}
	if err := s.idx.Set(snapshotKey(snap.Stream), v, pebble.NoSync); err != nil {
		return fmt.Errorf("embedded: save snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot implements events.Store.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (events.Snapshot, error) {
	if s.closed.Load() {
		return events.Snapshot{}, events.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return events.Snapshot{}, err
	}
	if err := events.ValidateStream(stream); err != nil {
		return events.Snapshot{}, err
	}
	if !s.acquire() {
		return events.Snapshot{}, events.ErrClosed
	}
	defer s.res.RUnlock()
	v, closer, err := s.idx.Get(snapshotKey(stream))
	if errors.Is(err, pebble.ErrNotFound) {
		return events.Snapshot{}, fmt.Errorf("%w: %s", events.ErrSnapshotNotFound, stream)
	}
	if err != nil {
		return events.Snapshot{}, fmt.Errorf("embedded: load snapshot: %w", err)
	}
	defer closer.Close()
	var p logbookv1.Snapshot
	if err := proto.Unmarshal(v, &p); err != nil {
		return events.Snapshot{}, fmt.Errorf("embedded: decode snapshot of %s: %w", stream, err)
	}
	snap := events.Snapshot{Stream: p.Stream, Version: p.Version, Type: p.Type, State: p.State}
	if p.Time != nil {
		snap.Time = p.Time.AsTime()
	}
	return snap, nil
}
