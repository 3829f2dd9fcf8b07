package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
)

// recentKeep is how many batches' ids the writer remembers after they are
// indexed; see appendReq.lookupSeq.
const recentKeep = 64

// appendReq is one Append call on its way through the writer and syncer.
type appendReq struct {
	stream string
	expect events.Expect
	evs    []events.Event
	// digests are the events' content digests, computed by the caller so
	// that the writer only links them into the chain.
	digests []events.Hash

	// The caller looks its ids up in the index before queueing, so that
	// the writer does not have to. lookupSeq is Store.indexed.seq as the
	// caller read it before looking: batches up to it were visible to the
	// lookup, later ones the writer checks in its recent set. found holds
	// the ids the caller found, with their positions. Ids greater than
	// every indexed id (the common case with time-ordered UUIDv7s) are
	// not looked up at all.
	lookupSeq uint64
	found     map[uuid.UUID]uint64

	res  events.AppendResult
	err  error
	done chan struct{}
}

// batch is what the writer wrote in one go, handed to the syncer.
type batch struct {
	seq  uint64
	reqs []*appendReq
	// buf holds the batch's encoded frames, to be written at offset at of
	// file; file is nil when every request failed.
	buf  []byte
	at   int64
	file vfs.File
	// sealed is the previous segment's write handle when this batch
	// started a new segment: synced and closed before file is synced.
	sealed vfs.File
	// idx holds the batch's index entries and the checkpoint after it,
	// committed by indexLoop after the batch is acknowledged; until then
	// readers find its frames in frames (see Store.pending).
	idx    *pebble.Batch
	frames []indexedFrame
	after  durableState // the log's end once this batch is durable
	maxID  uuid.UUID    // the greatest id in this batch or any before it
}

// writer is the state owned by the writer goroutine.
type writer struct {
	f       vfs.File // active segment, write handle
	seg     *segment
	off     int64 // where the next frame goes in seg
	lastIdx int64 // offset of the last 'P' index entry in seg, -1 if none
	nextPos uint64
	last    events.Hash
	seq     uint64
	maxID   uuid.UUID // the greatest id in the log

	streams map[string]uint64 // version of every stream written since open
	recent  recentIDs

	buf    []byte
	frames []frameRef
	key    []byte
}

type recentEvent struct {
	stream   string
	version  uint64
	position uint64
	hash     events.Hash
}

// recentIDs remembers the ids the writer appended that callers' index
// lookups may have missed: those of batches indexed less than recentKeep
// batches ago, or not yet. It keeps them in epochs of recentKeep batches, so
// forgetting is dropping a whole map rather than deleting id by id.
type recentIDs struct {
	epochs []recentEpoch // oldest first
}

type recentEpoch struct {
	first, last uint64 // sequence numbers of the batches it holds
	ids         map[uuid.UUID]int32
	events      []recentEvent
}

func (r *recentIDs) add(seq uint64, id uuid.UUID, ev recentEvent) {
	n := len(r.epochs)
	if n == 0 || seq-r.epochs[n-1].first >= recentKeep {
		size := 1024
		if n > 0 {
			size = len(r.epochs[n-1].events)
		}
		r.epochs = append(r.epochs, recentEpoch{
			first:  seq,
			ids:    make(map[uuid.UUID]int32, size),
			events: make([]recentEvent, 0, size),
		})
		n++
	}
	e := &r.epochs[n-1]
	e.last = seq
	e.ids[id] = int32(len(e.events))
	e.events = append(e.events, ev)
}

func (r *recentIDs) get(id uuid.UUID) (recentEvent, bool) {
	for i := len(r.epochs) - 1; i >= 0; i-- {
		if j, ok := r.epochs[i].ids[id]; ok {
			return r.epochs[i].events[j], true
		}
	}
	return recentEvent{}, false
}

// prune forgets the epochs whose batches were all indexed at least
// recentKeep batches before indexed.
func (r *recentIDs) prune(indexed uint64) {
	n := 0
	for n < len(r.epochs)-1 && r.epochs[n].last+recentKeep <= indexed {
		n++
	}
	r.epochs = r.epochs[n:]
}

// frameRef remembers where in w.buf one request's frame was encoded.
type frameRef struct {
	req        *appendReq
	start, end int
}

// Append implements events.Store. If ctx ends after the events were handed
// to the writer, Append returns ctx's error and the append may still
// complete; retrying with the same event ids tells which.
func (s *Store) Append(ctx context.Context, stream string, expect events.Expect, evs ...events.Event) (events.AppendResult, error) {
	if s.closed.Load() {
		return events.AppendResult{}, events.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return events.AppendResult{}, err
	}
	s.outstanding.Add(1)
	defer s.outstanding.Add(-1)
	prepared, err := events.PrepareAppend(stream, evs, s.cfg.now())
	if err != nil {
		return events.AppendResult{}, err
	}
	req := &appendReq{stream: stream, expect: expect, evs: prepared, done: make(chan struct{})}
	req.digests = make([]events.Hash, len(prepared))
	for i := range prepared {
		req.digests[i] = events.ContentDigest(&prepared[i])
	}
	if err := s.lookupIDs(req); err != nil {
		return events.AppendResult{}, err
	}
	select {
	case s.reqs <- req:
	case <-s.quit:
		return events.AppendResult{}, events.ErrClosed
	case <-ctx.Done():
		return events.AppendResult{}, ctx.Err()
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		return events.AppendResult{}, fmt.Errorf("embedded: append to %s: outcome unknown: %w", stream, ctx.Err())
	case <-s.stopped:
		select {
		case <-req.done:
		default:
			return events.AppendResult{}, events.ErrClosed
		}
	}
	return req.res, req.err
}

// lookupIDs looks the request's ids up in the index, on the caller's
// goroutine so that the writer does not have to.
func (s *Store) lookupIDs(req *appendReq) error {
	if !s.acquire() {
		return events.ErrClosed
	}
	defer s.res.RUnlock()
	st := s.indexed.Load()
	req.lookupSeq = st.seq
	for i := range req.evs {
		if bytes.Compare(req.evs[i].ID[:], st.maxID[:]) > 0 {
			continue
		}
		pos, ok, err := s.lookupID(req.evs[i].ID)
		if err != nil {
			return fmt.Errorf("embedded: append to %s: %w", req.stream, err)
		}
		if ok {
			if req.found == nil {
				req.found = make(map[uuid.UUID]uint64)
			}
			req.found[req.evs[i].ID] = pos
		}
	}
	return nil
}

// lookupID finds an event id in the index.
func (s *Store) lookupID(id uuid.UUID) (uint64, bool, error) {
	var k [17]byte
	k[0] = prefixID
	copy(k[1:], id[:])
	v, closer, err := s.idx.Get(k[:])
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("index: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("index: id %s: value is %d bytes, want 8", id, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

func (s *Store) writeLoop() {
	defer close(s.written)
	linger := time.NewTimer(time.Hour)
	defer linger.Stop()
	for {
		var first *appendReq
		select {
		case first = <-s.reqs:
		case <-s.quit:
			for {
				select {
				case r := <-s.reqs:
					r.err = events.ErrClosed
					close(r.done)
				default:
					return
				}
			}
		}
		reqs := []*appendReq{first}
		size := dataSize(first)
		lingering := false
	more:
		for size < s.cfg.maxBatch {
			select {
			case r := <-s.reqs:
				reqs = append(reqs, r)
				size += dataSize(r)
				continue
			default:
			}
			// Group commit: an Append in flight that is neither here nor
			// handed to the syncer is on its way in, or was just
			// acknowledged and is about to append again. Waiting a
			// little for it makes one write and one sync cover every
			// appender, instead of splitting them into groups that each
			// pay a sync (and each wake the syncer).
			if s.outstanding.Load() <= int64(len(reqs))+s.handed.Load() {
				break
			}
			if !lingering {
				linger.Reset(s.lingerFor())
				lingering = true
			}
			select {
			case r := <-s.reqs:
				reqs = append(reqs, r)
				size += dataSize(r)
			case <-linger.C:
				break more
			case <-s.quit:
				break more
			}
		}
		s.handed.Add(int64(len(reqs)))
		s.written <- s.writeBatch(reqs)
	}
}

func dataSize(r *appendReq) int {
	n := 0
	for i := range r.evs {
		n += len(r.evs[i].Data) + 128
	}
	return n
}

func (s *Store) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// fail puts the store in the failed state: it keeps serving reads of what
// is durable and refuses appends until it is reopened.
func (s *Store) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = err
		s.cfg.logger.Error("event log failed; appends are refused until the store is reopened", "err", err)
	}
}

// writeBatch decides every request, encodes the accepted ones as frames and
// writes them to the active segment with one write.
func (s *Store) writeBatch(reqs []*appendReq) *batch {
	w := &s.w
	w.seq++
	b := &batch{seq: w.seq, reqs: reqs}
	if err := s.failure(); err != nil {
		for _, r := range reqs {
			r.err = fmt.Errorf("embedded: append to %s: %w", r.stream, err)
		}
		b.after = durableState{head: events.Head{Position: w.nextPos - 1, Hash: w.last}, end: loc{w.seg.first, w.off}}
		return b
	}
	w.recent.prune(s.indexed.Load().seq)
	w.buf, w.frames = w.buf[:0], w.frames[:0]
	for _, r := range reqs {
		start := len(w.buf)
		if s.decide(r, b.seq) {
			w.frames = append(w.frames, frameRef{req: r, start: start, end: len(w.buf)})
		}
	}
	if len(w.frames) > 0 {
		if err := s.writeFrames(b); err != nil {
			s.fail(err)
			for _, fr := range w.frames {
				fr.req.err = fmt.Errorf("embedded: append to %s: %w", fr.req.stream, err)
			}
		}
	}
	b.after = durableState{head: events.Head{Position: w.nextPos - 1, Hash: w.last}, end: loc{w.seg.first, w.off}}
	b.maxID = w.maxID
	return b
}

// decide checks r against the log as the writer knows it and, when it is
// accepted, assigns versions, positions and hashes and encodes its frame.
// It reports whether a frame was added; otherwise r.res or r.err is set.
func (s *Store) decide(r *appendReq, seq uint64) bool {
	w := &s.w
	cur, err := s.streamVersion(r.stream)
	if err != nil {
		r.err = fmt.Errorf("embedded: append to %s: %w", r.stream, err)
		return false
	}
	if done := s.checkIDs(r); done {
		return false
	}
	if !r.expect.Allows(cur) {
		r.err = &events.WrongExpectedVersionError{Stream: r.stream, Expected: r.expect, Actual: cur}
		return false
	}
	prev := w.last
	for i := range r.evs {
		e := &r.evs[i]
		e.Version = cur + 1 + uint64(i)
		e.Position = w.nextPos + uint64(i)
		e.PrevHash = prev
		e.Hash = events.Link(prev, e.Position, e.Version, r.digests[i])
		prev = e.Hash
		w.recent.add(seq, e.ID, recentEvent{stream: r.stream, version: e.Version, position: e.Position, hash: e.Hash})
		if bytes.Compare(e.ID[:], w.maxID[:]) > 0 {
			w.maxID = e.ID
		}
	}
	w.buf = appendFrame(w.buf, w.last, r.evs)
	n := uint64(len(r.evs))
	r.res = events.AppendResult{
		FirstVersion: cur + 1, LastVersion: cur + n,
		FirstPosition: w.nextPos, LastPosition: w.nextPos + n - 1,
		Hash: prev,
	}
	w.streams[r.stream] = cur + n
	w.nextPos += n
	w.last = prev
	return true
}

// streamVersion returns a stream's current version as the writer knows it:
// from its own map for streams written since open, else from the index
// (which recovery brought up to date before the writer started).
func (s *Store) streamVersion(stream string) (uint64, error) {
	if v, ok := s.w.streams[stream]; ok {
		return v, nil
	}
	v, err := s.indexedStreamVersion(stream)
	if err != nil {
		return 0, err
	}
	s.w.streams[stream] = v
	return v, nil
}

func (s *Store) indexedStreamVersion(stream string) (uint64, error) {
	lo, hi := streamBounds(stream)
	it, err := s.idx.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("index: %w", err)
	}
	defer it.Close()
	if it.Last() {
		k := it.Key()
		return binary.BigEndian.Uint64(k[len(k)-8:]), nil
	}
	return 0, it.Error()
}

// checkIDs handles a request some of whose ids are already in the log. It
// reports whether r is settled: either an idempotent repeat (r.res is the
// original result) or ErrDuplicateEventID.
func (s *Store) checkIDs(r *appendReq) bool {
	stale := r.lookupSeq+recentKeep <= s.indexed.Load().seq
	hits := make([]recentEvent, 0, 1)
	for i := range r.evs {
		id := r.evs[i].ID
		ev, ok, err := s.locateID(r, id, stale)
		if err != nil {
			r.err = fmt.Errorf("embedded: append to %s: %w", r.stream, err)
			return true
		}
		if !ok {
			if len(hits) > 0 {
				break
			}
			continue
		}
		if i != len(hits) {
			r.err = fmt.Errorf("%w: append to %s: event %d (%s) is already at position %d in %s",
				events.ErrDuplicateEventID, r.stream, i, id, ev.position, ev.stream)
			return true
		}
		hits = append(hits, ev)
	}
	if len(hits) == 0 {
		return false
	}
	first := hits[0]
	same := len(hits) == len(r.evs) && r.expect.Allows(first.version-1)
	for i, h := range hits {
		same = same && h.stream == r.stream && h.version == first.version+uint64(i)
	}
	if !same {
		r.err = fmt.Errorf("%w: append to %s (%s): event %s is already at version %d of %s, position %d, as part of a different append",
			events.ErrDuplicateEventID, r.stream, r.expect, r.evs[0].ID, first.version, first.stream, first.position)
		return true
	}
	last := hits[len(hits)-1]
	r.res = events.AppendResult{
		FirstVersion: first.version, LastVersion: last.version,
		FirstPosition: first.position, LastPosition: last.position,
		Hash: last.hash,
	}
	return true
}

func (s *Store) locateID(r *appendReq, id uuid.UUID, stale bool) (recentEvent, bool, error) {
	if bytes.Compare(id[:], s.w.maxID[:]) > 0 {
		return recentEvent{}, false, nil // greater than every id in the log
	}
	if ev, ok := s.w.recent.get(id); ok {
		return ev, true, nil
	}
	pos, ok := r.found[id]
	if !ok && stale {
		var err error
		if pos, ok, err = s.lookupID(id); err != nil {
			return recentEvent{}, false, err
		}
	}
	if !ok {
		return recentEvent{}, false, nil
	}
	ev, err := s.eventAt(pos)
	if err != nil {
		return recentEvent{}, false, fmt.Errorf("read event %s at position %d: %w", id, pos, err)
	}
	return recentEvent{stream: ev.Stream, version: ev.Version, position: ev.Position, hash: ev.Hash}, true, nil
}

// writeFrames writes the encoded frames, rolling to a new segment first when
// the active one is full, and builds their index entries.
func (s *Store) writeFrames(b *batch) error {
	w := &s.w
	if w.off > segmentHeaderLen && w.off+int64(len(w.buf)) > s.cfg.segmentSize {
		firstPos := w.frames[0].req.evs[0].Position
		sealed, err := s.roll(firstPos)
		if err != nil {
			return err
		}
		b.sealed = sealed
	}
	// The syncer writes the frames, together with those of the other
	// batches its sync covers: one write instead of one per batch.
	b.file, b.at, b.buf = w.f, w.off, w.buf
	b.idx = s.idx.NewBatch()
	b.frames = make([]indexedFrame, 0, len(w.frames))
	for _, fr := range w.frames {
		off := w.off + int64(fr.start)
		posEntry := w.lastIdx < 0 || off-w.lastIdx >= posIndexEvery
		if posEntry {
			w.lastIdx = off
		}
		r := fr.req
		w.key = indexFrame(b.idx, w.key, r.evs, loc{w.seg.first, off}, fr.end-fr.start, posEntry)
		w.key = indexIDs(b.idx, w.key, r.evs)
		b.frames = append(b.frames, indexedFrame{stream: r.stream, lastVersion: r.res.LastVersion, run: run{
			firstVersion: r.res.FirstVersion, firstPos: r.res.FirstPosition,
			frame: loc{w.seg.first, off}, frameLen: uint32(fr.end - fr.start),
		}})
	}
	w.off += int64(len(w.buf))
	w.buf = getBuf()
	b.idx.Set(checkpointKey, encodeCheckpoint(checkpoint{
		head: events.Head{Position: w.nextPos - 1, Hash: w.last},
		end:  loc{w.seg.first, w.off},
	}), nil)
	return nil
}

// roll seals the active segment and starts a new one whose first position
// is first. It returns the sealed segment's write handle, which the syncer
// syncs and closes.
func (s *Store) roll(first uint64) (vfs.File, error) {
	w := &s.w
	seg, f, err := s.createSegment(first)
	if err != nil {
		return nil, err
	}
	w.seg.size.Store(w.off)
	sealed := w.f
	w.f, w.seg, w.off, w.lastIdx = f, seg, segmentHeaderLen, -1
	return sealed, nil
}

// createSegment creates and registers a segment file starting at first,
// with its header written and the directory entry synced.
func (s *Store) createSegment(first uint64) (*segment, vfs.File, error) {
	path := filepath.Join(s.logDir(), segmentName(first))
	f, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, nil, fmt.Errorf("create segment: %w", err)
	}
	hdr := binary.LittleEndian.AppendUint64([]byte(segmentMagic), first)
	if _, err := f.WriteAt(hdr, 0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("write segment header %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("sync %s: %w", path, err)
	}
	if err := s.syncDir(); err != nil {
		f.Close()
		return nil, nil, err
	}
	r, err := s.fs.Open(path)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open segment %s: %w", path, err)
	}
	seg := &segment{first: first, path: path, r: r}
	seg.size.Store(-1)
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.mu.Unlock()
	return seg, f, nil
}

func (s *Store) syncDir() error {
	d, err := s.fs.OpenDir(s.logDir())
	if err != nil {
		return fmt.Errorf("open log directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync log directory: %w", err)
	}
	return nil
}

// syncLoop makes written batches durable with one sync for all the batches
// written since the last one, publishes and acknowledges them, and hands
// them on to indexLoop.
func (s *Store) syncLoop() {
	defer close(s.synced)
	linger := time.NewTimer(time.Hour)
	defer linger.Stop()
	for b := range s.written {
		bs := []*batch{b}
		held := len(b.reqs)
		lingering := false
	more:
		for {
			select {
			case nb, ok := <-s.written:
				if !ok {
					break more
				}
				bs = append(bs, nb)
				held += len(nb.reqs)
			default:
				// Group commit: every Append in flight that this
				// sync does not hold yet is either on its way to the
				// writer or returning from its acknowledgement and
				// about to append again. Waiting a little for them
				// makes one sync cover them all instead of splitting
				// the appenders into groups that each pay a sync.
				if s.outstanding.Load() <= int64(held) {
					break more
				}
				if !lingering {
					linger.Reset(s.lingerFor())
					lingering = true
				}
				select {
				case nb, ok := <-s.written:
					if !ok {
						break more
					}
					bs = append(bs, nb)
					held += len(nb.reqs)
				case <-linger.C:
					break more
				}
			}
		}
		s.sync(bs)
		s.publish(bs)
		s.synced <- bs
	}
}

// lingerFor is the longest a sync waits for appends that are on their way:
// as long as the last sync took, within [50us, 2ms]. Waiting longer than a
// sync costs would lose more than it gains.
func (s *Store) lingerFor() time.Duration {
	return min(max(time.Duration(s.lastSync.Load()), 50*time.Microsecond), 2*time.Millisecond)
}

// sync writes the frames of bs, with one write per run of contiguous
// batches in one segment, and makes them durable with one fdatasync (and one
// for each segment sealed meanwhile), or puts the store in the failed state.
func (s *Store) sync(bs []*batch) {
	var err error
	var file vfs.File
	var at int64
	out := s.syncBuf[:0]
	flush := func() {
		if len(out) > 0 && err == nil {
			if _, werr := file.WriteAt(out, at); werr != nil {
				err = fmt.Errorf("write: %w", werr)
			}
			s.stats.writes.Add(1)
		}
		out = out[:0]
	}
	for _, b := range bs {
		if b.file == nil {
			continue
		}
		if b.file != file || at+int64(len(out)) != b.at {
			flush()
			if b.sealed != nil {
				err = errors.Join(err, b.sealed.SyncData(), b.sealed.Close())
			}
			file, at = b.file, b.at
		}
		out = append(out, b.buf...)
		putBuf(b.buf)
		b.buf = nil
	}
	flush()
	if cap(out) <= maxSyncBuf {
		s.syncBuf = out
	}
	if err == nil && file != nil {
		t0 := time.Now()
		err = file.SyncData()
		s.lastSync.Store(int64(time.Since(t0)))
		s.stats.syncs.Add(1)
	}
	if err != nil {
		s.fail(fmt.Errorf("sync: %w", err))
	}
}

// maxSyncBuf bounds the write buffer the syncer keeps between syncs.
const maxSyncBuf = 16 << 20

var bufs = sync.Pool{New: func() any { return new([]byte) }}

func getBuf() []byte { return (*bufs.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) > 0 && cap(b) <= maxSyncBuf {
		b = b[:0]
		bufs.Put(&b)
	}
}

// indexLoop commits the index entries of published batches, off the path
// of acknowledgements, then drops them from Store.pending. Append's callers
// look ids up in the index only for batches up to Store.indexed.seq, and the
// writer remembers the ids of later ones.
func (s *Store) indexLoop() {
	for bs := range s.synced {
		err := s.failure()
		for _, b := range bs {
			if b.idx == nil {
				continue
			}
			if err == nil {
				if err = b.idx.Commit(pebble.NoSync); err != nil {
					s.fail(fmt.Errorf("index: %w", err))
				}
			}
			b.idx.Close()
		}
		if err != nil {
			continue // pending keeps serving what the index lacks
		}
		last := bs[len(bs)-1]
		s.indexed.Store(&indexedState{seq: last.seq, maxID: last.maxID})
		s.mu.Lock()
		n := 0
		for n < len(s.pending) && s.pending[n].seq <= last.seq {
			n++
		}
		s.pending = s.pending[n:]
		s.mu.Unlock()
	}
}

// publish makes durable batches visible, keeping their frames in
// Store.pending until indexLoop has indexed them, and answers their
// requests.
func (s *Store) publish(bs []*batch) {
	for _, b := range bs {
		s.handed.Add(-int64(len(b.reqs)))
	}
	if err := s.failure(); err != nil {
		for _, b := range bs {
			for _, r := range b.reqs {
				if r.err == nil {
					r.res = events.AppendResult{}
					r.err = fmt.Errorf("embedded: append to %s: outcome unknown: %w", r.stream, err)
				}
				close(r.done)
			}
		}
		return
	}
	last := bs[len(bs)-1]
	s.mu.Lock()
	for _, b := range bs {
		if len(b.frames) > 0 {
			s.pending = append(s.pending, b)
		}
	}
	advanced := last.after.head.Position != s.durable.head.Position
	s.durable = last.after
	if advanced {
		close(s.notify)
		s.notify = make(chan struct{})
	}
	s.mu.Unlock()
	var appends, n uint64
	for _, b := range bs {
		for _, f := range b.frames { // idempotent repeats wrote no frame
			appends++
			n += f.lastVersion - f.firstVersion + 1
		}
		for _, r := range b.reqs {
			close(r.done)
		}
	}
	s.stats.appends.Add(appends)
	s.stats.events.Add(n)
}
