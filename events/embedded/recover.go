package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
)

// recover opens the segments, finds the end of the log and brings the
// index up to date with it:
//
//   - The index's checkpoint says up to where it holds the log. Everything
//     before it was durable when it was indexed, so it is trusted.
//   - Frames after it are scanned, checked (CRC, dense positions, chained
//     hashes) and indexed. The first frame that fails is the torn tail of
//     an append that was never acknowledged: the segment is truncated there
//     and any later segment removed.
//   - A log shorter than its checkpoint has lost acknowledged events; Open
//     fails rather than serve it.
func (s *Store) recover(ctx context.Context) error {
	firsts, err := s.listSegments()
	if err != nil {
		return err
	}
	ckpt, found, err := s.loadCheckpoint()
	if err != nil {
		return err
	}
	if len(firsts) == 0 {
		if found && ckpt.head.Position > 0 {
			return &events.CorruptionError{Position: 1, Reason: fmt.Sprintf(
				"the log directory has no segments but the index records %d events: the log was removed", ckpt.head.Position)}
		}
		return s.startEmpty()
	}
	for _, first := range firsts {
		path := filepath.Join(s.logDir(), segmentName(first))
		r, err := s.fs.Open(path)
		if err != nil {
			return fmt.Errorf("open segment: %w", err)
		}
		seg := &segment{first: first, path: path, r: r}
		st, err := r.Stat()
		if err != nil {
			return fmt.Errorf("stat %s: %w", path, err)
		}
		seg.size.Store(st.Size())
		s.segs = append(s.segs, seg)
	}
	if !found {
		ckpt = checkpoint{end: loc{segment: s.segs[0].first, offset: segmentHeaderLen}}
	}
	start := segmentIndex(s.segs, ckpt.end.segment)
	if start < 0 {
		return &events.CorruptionError{Position: ckpt.head.Position, Reason: fmt.Sprintf(
			"segment %s, which the index records events in, is missing", segmentName(ckpt.end.segment))}
	}
	if size := s.segs[start].size.Load(); size < ckpt.end.offset {
		return &events.CorruptionError{Position: ckpt.head.Position, Reason: fmt.Sprintf(
			"segment %s is %d bytes but the index records events up to byte %d: acknowledged events are missing",
			segmentName(ckpt.end.segment), size, ckpt.end.offset)}
	}
	for _, seg := range s.segs[start:] {
		if err := s.checkHeader(seg, seg.size.Load()); err != nil {
			if seg.first == ckpt.end.segment || seg != s.segs[len(s.segs)-1] {
				return err
			}
			// A segment created by a roll that crashed before its
			// header was durable holds nothing acknowledged.
			s.cfg.logger.Warn("removing segment with a torn header", "segment", seg.path, "err", err)
			if err := s.removeSegments(len(s.segs) - 1); err != nil {
				return err
			}
			break
		}
	}
	return s.replayTail(ctx, start, ckpt)
}

// replayTail indexes the frames after the checkpoint and truncates a torn
// tail.
func (s *Store) replayTail(ctx context.Context, start int, ckpt checkpoint) error {
	last := s.segs[len(s.segs)-1]
	scanEnd := durableState{head: events.Head{Position: math.MaxUint64}, end: loc{last.first, last.size.Load()}}
	c := s.newCursor(view{segs: s.segs}, scanChunk)
	c.i, c.off, c.next, c.positioned = start, ckpt.end.offset, ckpt.head.Position+1, true
	head := ckpt.head
	b := s.idx.NewBatch()
	var key []byte
	lastIdx := int64(-1)
	indexed := 0
	flush := func() error {
		b.Set(checkpointKey, encodeCheckpoint(checkpoint{head: head, end: loc{c.segs[c.i].first, c.off}}), nil)
		err := b.Commit(pebble.NoSync)
		b.Close()
		b = s.idx.NewBatch()
		return err
	}
	defer func() { b.Close() }()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		at := loc{c.segs[c.i].first, c.off}
		if at.segment != ckpt.end.segment && at.offset == segmentHeaderLen {
			lastIdx = -1
		}
		f, err := c.frame(scanEnd)
		if f == nil && err == nil {
			break
		}
		var corrupt *events.CorruptionError
		if err != nil && !errors.As(err, &corrupt) {
			return err
		}
		if err == nil && f.prevHash != head.Hash {
			err = c.corrupt("previous hash does not match")
		}
		if err != nil {
			if err := s.truncateTail(c.i, c.off, err); err != nil {
				return err
			}
			break
		}
		if at.segment != c.segs[c.i].first { // the cursor moved to the next segment
			at, lastIdx = loc{c.segs[c.i].first, segmentHeaderLen}, -1
		}
		posEntry := lastIdx < 0 || at.offset-lastIdx >= posIndexEvery
		if posEntry {
			lastIdx = at.offset
		}
		key = indexFrame(b, key, f.events, at, f.size, posEntry)
		key = indexIDs(b, key, f.events)
		head = events.Head{Position: f.lastPos(), Hash: f.events[len(f.events)-1].Hash}
		if indexed += len(f.events); b.Len() > 32<<20 {
			if err := flush(); err != nil {
				return fmt.Errorf("index: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if indexed > 0 {
		s.cfg.logger.Info("recovered log tail", "events", indexed, "head", head.Position)
	}
	maxID, err := s.maxIndexedID()
	if err != nil {
		return err
	}
	if err := s.resume(head, c.i, c.off); err != nil {
		return err
	}
	s.w.maxID = maxID
	s.indexed.Store(&indexedState{maxID: maxID})
	return nil
}

// maxIndexedID returns the greatest event id in the index.
func (s *Store) maxIndexedID() (uuid.UUID, error) {
	it, err := s.idx.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixID}, UpperBound: []byte{prefixID + 1}})
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("index: %w", err)
	}
	defer it.Close()
	var id uuid.UUID
	if it.Last() {
		copy(id[:], it.Key()[1:])
	}
	return id, it.Error()
}

// resume makes segment i the active one, appending at off after head.
func (s *Store) resume(head events.Head, i int, off int64) error {
	if err := s.removeSegments(i + 1); err != nil {
		return err
	}
	seg := s.segs[i]
	f, err := s.fs.OpenReadWrite(seg.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("open segment for writing: %w", err)
	}
	seg.size.Store(-1)
	s.w = writer{
		f: f, seg: seg, off: off, lastIdx: -1, zeroed: min(extendable(f), off),
		nextPos: head.Position + 1, last: head.Hash,
		streams: make(map[string]uint64),
	}
	s.durable = durableState{head: head, end: loc{seg.first, off}}
	return nil
}

func (s *Store) startEmpty() error {
	seg, f, err := s.createSegment(1)
	if err != nil {
		return err
	}
	s.w = writer{
		f: f, seg: seg, off: segmentHeaderLen, lastIdx: -1, nextPos: 1, zeroed: extendable(f),
		streams: make(map[string]uint64),
	}
	s.durable = durableState{end: loc{1, segmentHeaderLen}}
	s.indexed.Store(&indexedState{})
	return nil
}

// truncateTail cuts segment i at off, discarding a torn or stale tail,
// and removes every later segment.
func (s *Store) truncateTail(i int, off int64, why error) error {
	seg := s.segs[i]
	size := seg.size.Load()
	tail := make([]byte, size-off)
	if err := s.readAt(seg, tail, off); err != nil {
		return err
	}
	if len(bytes.Trim(tail, "\x00")) > 0 || i < len(s.segs)-1 {
		s.cfg.logger.Warn("truncating torn tail of the log (an append that was never acknowledged)",
			"segment", seg.path, "offset", off, "bytes", len(tail), "later_segments", len(s.segs)-1-i, "reason", why)
	}
	if err := s.removeSegments(i + 1); err != nil {
		return err
	}
	f, err := s.fs.OpenReadWrite(seg.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("open %s: %w", seg.path, err)
	}
	defer f.Close()
	if t, ok := f.(interface{ Truncate(int64) error }); ok {
		err = t.Truncate(off)
	} else {
		_, err = f.WriteAt(make([]byte, len(tail)), off)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("truncate %s: %w", seg.path, err)
	}
	seg.size.Store(off)
	return nil
}

// removeSegments deletes segments from index i on.
func (s *Store) removeSegments(i int) error {
	if i >= len(s.segs) {
		return nil
	}
	for _, seg := range s.segs[i:] {
		seg.r.Close()
		if err := s.fs.Remove(seg.path); err != nil {
			return fmt.Errorf("remove %s: %w", seg.path, err)
		}
	}
	s.segs = s.segs[:i]
	return s.syncDir()
}

func (s *Store) listSegments() ([]uint64, error) {
	names, err := s.fs.List(s.logDir())
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var firsts []uint64
	for _, n := range names {
		base, ok := strings.CutSuffix(n, ".seg")
		if !ok {
			continue
		}
		first, err := strconv.ParseUint(base, 10, 64)
		if err != nil || first == 0 || segmentName(first) != n {
			return nil, fmt.Errorf("unexpected file %s in the log directory", n)
		}
		firsts = append(firsts, first)
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	return firsts, nil
}

// checkHeader checks the header of seg, whose readable size is size.
func (s *Store) checkHeader(seg *segment, size int64) error {
	var hdr [segmentHeaderLen]byte
	if size < segmentHeaderLen {
		return &events.CorruptionError{Position: seg.first, Reason: fmt.Sprintf("segment %s is shorter than its header", seg.path)}
	}
	if err := s.readAt(seg, hdr[:], 0); err != nil {
		return err
	}
	if string(hdr[:8]) != segmentMagic || binary.LittleEndian.Uint64(hdr[8:]) != seg.first {
		return &events.CorruptionError{Position: seg.first, Reason: fmt.Sprintf("segment %s has a bad header", seg.path)}
	}
	return nil
}

func (s *Store) loadCheckpoint() (checkpoint, bool, error) {
	v, closer, err := s.idx.Get(checkpointKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint{}, false, fmt.Errorf("index: %w", err)
	}
	defer closer.Close()
	c, err := decodeCheckpoint(v)
	return c, true, err
}
