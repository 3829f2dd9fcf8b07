package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/logbook-fleet/logbook/events"
)

// scanChunk is how much a sequential reader reads from a segment at once.
const scanChunk = 1 << 20

// readable returns how far seg may be read: to the durable end in the
// segment holding it, to the sealed size before it, not at all after it.
func readable(seg *segment, d durableState) int64 {
	switch {
	case seg.first == d.end.segment:
		return d.end.offset
	case seg.first < d.end.segment:
		return seg.size.Load()
	}
	return segmentHeaderLen
}

// cursor reads frames in log order. Each chunk it reads is a fresh buffer,
// so events it returns never share memory with later reads.
type cursor struct {
	s    *Store
	segs []*segment
	i    int   // current segment
	off  int64 // next frame's offset in it
	next uint64
	// positioned: i, off and next point at a frame boundary.
	positioned bool
	chunk      int
	buf        []byte
	bufAt      int64 // offset of buf[0] in segs[i]
	in         interner
	f          frame
	// pending are the view's batches not yet in the index; seek looks
	// there too.
	pending []*batch
}

func (s *Store) newCursor(v view, chunk int) *cursor {
	return &cursor{s: s, segs: v.segs, pending: v.pending, chunk: chunk, in: make(interner)}
}

// seek moves the cursor to an indexed frame at or before position pos, so
// that the frames it returns next include pos.
func (c *cursor) seek(pos uint64) error {
	c.i, c.off, c.next, c.buf, c.positioned = 0, segmentHeaderLen, 1, nil, true
	if pos <= 1 {
		return nil
	}
	at, first, found, err := c.s.indexedFrameAt(pos)
	if err != nil {
		return err
	}
	if r, ok := (view{pending: c.pending}).pendingFrameAt(pos); ok && (!found || r.firstPos > first) {
		at, first, found = r.frame, r.firstPos, true
	}
	if !found {
		return nil
	}
	i := segmentIndex(c.segs, at.segment)
	if i < 0 {
		return fmt.Errorf("index: position %d points into missing segment %s", pos, segmentName(at.segment))
	}
	c.i, c.off, c.next = i, at.offset, first
	return nil
}

// indexedFrameAt returns the last indexed frame start at or before pos.
func (s *Store) indexedFrameAt(pos uint64) (at loc, first uint64, found bool, err error) {
	if !s.acquire() {
		return loc{}, 0, false, events.ErrClosed
	}
	defer s.res.RUnlock()
	it, err := s.idx.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixPos}, UpperBound: posKey(pos + 1)})
	if err != nil {
		return loc{}, 0, false, fmt.Errorf("index: %w", err)
	}
	defer it.Close()
	if !it.Last() {
		return loc{}, 0, false, it.Error()
	}
	at, err = decodeLoc(it.Value())
	return at, binary.BigEndian.Uint64(it.Key()[1:]), err == nil, err
}

func segmentIndex(segs []*segment, first uint64) int {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].first >= first })
	if i < len(segs) && segs[i].first == first {
		return i
	}
	return -1
}

// frame returns the next frame up to the durable end d, or nil at the end.
// The frame is overwritten by the next call.
func (c *cursor) frame(d durableState) (*frame, error) {
	for {
		if c.i >= len(c.segs) {
			return nil, nil
		}
		seg := c.segs[c.i]
		limit := readable(seg, d)
		if c.off >= limit {
			if seg.first >= d.end.segment || c.i+1 >= len(c.segs) {
				return nil, nil
			}
			if c.segs[c.i+1].first != c.next {
				return nil, c.corrupt(fmt.Sprintf("segment %s does not start at the position after the previous segment", segmentName(c.segs[c.i+1].first)))
			}
			c.i, c.off, c.buf = c.i+1, segmentHeaderLen, nil
			continue
		}
		b, err := c.bytes(seg, c.off, frameHeaderLen, limit)
		if err != nil {
			return nil, err
		}
		n := frameLen(b)
		if n <= frameHeaderLen || c.off+int64(n) > limit {
			return nil, c.corrupt(fmt.Sprintf("bad frame length at offset %d of %s", c.off, segmentName(seg.first)))
		}
		if b, err = c.bytes(seg, c.off, n, limit); err != nil {
			return nil, err
		}
		if err := decodeFrame(b, c.in, &c.f); err != nil {
			return nil, c.corrupt(fmt.Sprintf("offset %d of %s: %v", c.off, segmentName(seg.first), err))
		}
		if c.f.firstPos != c.next {
			return nil, c.corrupt(fmt.Sprintf("frame at offset %d of %s holds position %d", c.off, segmentName(seg.first), c.f.firstPos))
		}
		c.off += int64(n)
		c.next = c.f.lastPos() + 1
		return &c.f, nil
	}
}

func (c *cursor) corrupt(reason string) error {
	return &events.CorruptionError{Position: c.next, Reason: reason}
}

// bytes returns n bytes at off in seg, reading a new chunk when the current
// one does not hold them.
func (c *cursor) bytes(seg *segment, off int64, n int, limit int64) ([]byte, error) {
	if c.buf != nil && off >= c.bufAt && off+int64(n) <= c.bufAt+int64(len(c.buf)) {
		return c.buf[off-c.bufAt : off-c.bufAt+int64(n)], nil
	}
	size := int64(max(c.chunk, n))
	size = min(size, limit-off)
	if size < int64(n) {
		return nil, c.corrupt(fmt.Sprintf("frame at offset %d of %s runs past the end of the log", off, segmentName(seg.first)))
	}
	buf := make([]byte, size)
	if err := c.s.readAt(seg, buf, off); err != nil {
		return nil, err
	}
	c.buf, c.bufAt = buf, off
	return buf[:n], nil
}

// ReadAll implements events.Store.
func (s *Store) ReadAll(ctx context.Context, fromPosition uint64, filter events.Filter) iter.Seq2[events.Event, error] {
	return func(yield func(events.Event, error) bool) {
		v := s.view()
		if s.closed.Load() {
			yield(events.Event{}, events.ErrClosed)
			return
		}
		c := s.newCursor(v, scanChunk)
		s.scan(ctx, c, max(fromPosition, 1), v.durableState, filter, yield)
	}
}

// scan yields the events from pos to the durable end d. It returns the next
// position to read and whether the caller may go on (false once yield
// declined or an error was yielded).
func (s *Store) scan(ctx context.Context, c *cursor, pos uint64, d durableState, filter events.Filter,
	yield func(events.Event, error) bool) (uint64, bool) {
	if pos > d.head.Position {
		return pos, true
	}
	if !c.positioned || c.next != pos {
		if err := c.seek(pos); err != nil {
			return pos, yield(events.Event{}, err) && false
		}
	}
	checkCats := len(filter.Categories) > 0
	for n := 0; ; n++ {
		if n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return pos, yield(events.Event{}, err) && false
			}
		}
		f, err := c.frame(d)
		if err != nil {
			return pos, yield(events.Event{}, err) && false
		}
		if f == nil {
			return pos, true
		}
		if f.lastPos() < pos {
			continue
		}
		if checkCats && !slices.Contains(filter.Categories, events.Category(f.stream)) {
			pos = f.lastPos() + 1
			continue
		}
		for i := range f.events {
			e := &f.events[i]
			if e.Position < pos {
				continue
			}
			pos = e.Position + 1
			if filter.IsZero() || filter.Match(e.Stream, e.Type) {
				if !yield(*e, nil) {
					return pos, false
				}
			}
		}
	}
}

// Subscribe implements events.Store.
func (s *Store) Subscribe(ctx context.Context, fromPosition uint64, filter events.Filter) iter.Seq2[events.Event, error] {
	return func(yield func(events.Event, error) bool) {
		pos := max(fromPosition, 1)
		var c *cursor
		for {
			v := s.view()
			if v.notify == nil || s.closed.Load() {
				yield(events.Event{}, events.ErrClosed)
				return
			}
			if c == nil {
				c = s.newCursor(v, scanChunk)
			} else {
				c.segs, c.pending = v.segs, v.pending
			}
			notify := v.notify
			var ok bool
			if pos, ok = s.scan(ctx, c, pos, v.durableState, filter, yield); !ok {
				return
			}
			select {
			case <-notify:
			case <-ctx.Done():
				yield(events.Event{}, ctx.Err())
				return
			}
		}
	}
}

// ReadStream implements events.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, fromVersion uint64) iter.Seq2[events.Event, error] {
	return func(yield func(events.Event, error) bool) {
		if s.closed.Load() {
			yield(events.Event{}, events.ErrClosed)
			return
		}
		if err := events.ValidateStream(stream); err != nil {
			yield(events.Event{}, err)
			return
		}
		v := s.view()
		d, segs := v.durableState, v.segs
		in := make(interner)
		var f frame
		from := max(fromVersion, 1)
		inIndex := true
		for page := 0; ; page++ {
			if err := ctx.Err(); err != nil {
				yield(events.Event{}, err)
				return
			}
			var runs []run
			more := false
			if inIndex {
				var exists bool
				var err error
				runs, exists, more, err = s.streamRuns(stream, from, d.head.Position, page == 0)
				if err != nil {
					yield(events.Event{}, err)
					return
				}
				if page == 0 && !exists && v.pendingVersion(stream) == 0 {
					yield(events.Event{}, fmt.Errorf("%w: %s", events.ErrStreamNotFound, stream))
					return
				}
			} else {
				// The tail the index does not have yet.
				runs = v.pendingRuns(stream, from)
			}
			for i := 0; i < len(runs); {
				j := readGroup(runs, i)
				buf, err := s.readRuns(segs, d, runs[i:j])
				if err != nil {
					yield(events.Event{}, err)
					return
				}
				base := runs[i].frame.offset
				for _, r := range runs[i:j] {
					b := buf[r.frame.offset-base : r.frame.offset-base+int64(r.frameLen)]
					if err := decodeFrame(b, in, &f); err != nil || f.firstPos != r.firstPos || f.firstVer != r.firstVersion {
						yield(events.Event{}, &events.CorruptionError{Position: r.firstPos, Reason: fmt.Sprintf(
							"indexed frame of %s at offset %d of %s does not decode as expected: %v",
							stream, r.frame.offset, segmentName(r.frame.segment), err)})
						return
					}
					for k := range f.events {
						if f.events[k].Version >= from && !yield(f.events[k], nil) {
							return
						}
					}
					from = f.events[len(f.events)-1].Version + 1
				}
				i = j
			}
			if !more {
				if !inIndex {
					return
				}
				inIndex = false
			}
		}
	}
}

// streamRunsPage is how many runs ReadStream takes from the index at a time:
// it holds no index iterator while it yields.
const streamRunsPage = 256

// streamRuns returns the runs of stream holding versions >= from that were
// durable at head, a page at a time. When check is set it also reports
// whether the stream has any event at all.
func (s *Store) streamRuns(stream string, from, head uint64, check bool) (runs []run, exists, more bool, err error) {
	if !s.acquire() {
		return nil, false, false, events.ErrClosed
	}
	defer s.res.RUnlock()
	lo, hi := streamBounds(stream)
	it, err := s.idx.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, false, false, fmt.Errorf("embedded: index: %w", err)
	}
	defer it.Close()
	if check {
		exists = it.First() && mustRun(it.Value()).firstPos <= head
	}
	for ok := it.SeekGE(streamKey(stream, from)); ok; ok = it.Next() {
		r, err := decodeRun(it.Value())
		if err != nil {
			return nil, false, false, err
		}
		if r.firstPos > head {
			break // appended after the read started
		}
		if len(runs) == streamRunsPage {
			more = true
			break
		}
		runs = append(runs, r)
	}
	if err := it.Error(); err != nil {
		return nil, false, false, fmt.Errorf("embedded: index: %w", err)
	}
	return runs, exists, more, nil
}

// Runs of one stream that lie close together in a segment (an entity's
// events appended one command at a time, say) are read with one read
// instead of one per frame, as long as the bytes between them are few.
const (
	readGap  = 64 << 10
	readSpan = 4 << 20
)

// readGroup returns the end of the group of runs starting at i that
// readRuns reads at once.
func readGroup(runs []run, i int) int {
	start := runs[i].frame.offset
	end := start + int64(runs[i].frameLen)
	j := i + 1
	for ; j < len(runs); j++ {
		r := runs[j]
		if r.frame.segment != runs[i].frame.segment || r.frame.offset < end ||
			r.frame.offset-end > readGap || r.frame.offset+int64(r.frameLen)-start > readSpan {
			break
		}
		end = r.frame.offset + int64(r.frameLen)
	}
	return j
}

// readRuns reads the bytes from the first run's frame to the end of the
// last one's, all in one segment.
func (s *Store) readRuns(segs []*segment, d durableState, runs []run) ([]byte, error) {
	first, last := runs[0], runs[len(runs)-1]
	i := segmentIndex(segs, first.frame.segment)
	if i < 0 {
		return nil, fmt.Errorf("embedded: index points into missing segment %s", segmentName(first.frame.segment))
	}
	end := last.frame.offset + int64(last.frameLen)
	if end > readable(segs[i], d) {
		return nil, &events.CorruptionError{Position: last.firstPos, Reason: "indexed frame is past the end of the log"}
	}
	buf := make([]byte, end-first.frame.offset)
	if err := s.readAt(segs[i], buf, first.frame.offset); err != nil {
		return nil, err
	}
	return buf, nil
}

// mustRun decodes a run for a bounds check; a malformed value reads as
// position 0 and is reported by decodeRun when the run is used.
func mustRun(v []byte) run {
	r, _ := decodeRun(v)
	return r
}

// eventAt reads the durable event at pos.
func (s *Store) eventAt(pos uint64) (events.Event, error) {
	v := s.view()
	d := v.durableState
	c := s.newCursor(v, 64<<10)
	if err := c.seek(pos); err != nil {
		return events.Event{}, err
	}
	for {
		f, err := c.frame(d)
		if err != nil {
			return events.Event{}, err
		}
		if f == nil {
			return events.Event{}, fmt.Errorf("position %d is past the durable end %d", pos, d.head.Position)
		}
		if f.lastPos() >= pos {
			return f.events[pos-f.firstPos], nil
		}
	}
}
