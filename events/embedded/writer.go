package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/events"
)

// recentKeep is how many groups' ids the writer remembers after they are
// indexed; see appendReq.lookupSeq.
const recentKeep = 16

// appendReq is one Append call on its way into the log.
type appendReq struct {
	stream string
	expect events.Expect
	evs    []events.Event
	// digests are the events' content digests, computed by the caller
	// before it joins a group, so that only Link is done under gmu.
	digests []events.Hash
	digest1 [1]events.Hash // digests' storage for single-event appends

	// The caller looks its ids up in the index before joining a group.
	// lookupSeq is Store.indexed.seq as the caller read it before looking:
	// groups up to it were visible to the lookup, later ones are checked
	// in the writer's recent set. found holds the ids the caller found,
	// with their positions. Ids greater than every indexed id (the common
	// case with time-ordered UUIDv7s) are not looked up at all.
	lookupSeq uint64
	found     map[uuid.UUID]uint64

	// res and err are the outcome, final once the group's done is closed.
	res events.AppendResult
	err error
}

// batch is one write group: the appends that share one write and one
// fdatasync. Appends join the filling group under Store.gmu, each deciding
// and encoding its own frame into buf; the first to join is its leader,
// which waits for the group before it to be done, seals it, writes and
// syncs it, publishes it and closes done.
type batch struct {
	seq uint64
	// prev is the group before, until the leader has waited for it.
	prev *batch
	// Guarded by gmu while the group fills; the leader's once sealed.
	reqs      []*appendReq // every member, accepted or not, in join order
	buf       []byte       // the accepted members' frames, back to back
	refs      []frameRef   // where each accepted member's frame is in buf
	hasLeader bool
	lingering bool          // the leader waits on wake for more members
	wake      chan struct{} // capacity 1
	// after is the log's end once this group is durable: head is set when
	// the group stops taking members, end when it is written. maxID is
	// the greatest id in this group or any before it.
	after durableState
	maxID uuid.UUID

	// Set by the leader: the frames as readers find them in
	// Store.pending until indexLoop has indexed them.
	frames []indexedFrame

	done chan struct{} // closed once every member's outcome is set
}

// writer is the log's write state. The decision state (positions, hashes,
// stream versions, ids) is guarded by Store.gmu; the file state belongs to
// the leader of the group being written (leaders take turns in group
// order).
type writer struct {
	// Guarded by gmu.
	nextPos uint64
	last    events.Hash
	seq     uint64            // the last group's sequence number
	maxID   uuid.UUID         // the greatest id in the log
	streams map[string]uint64 // version of every stream written since open
	recent  recentIDs

	// The writing leader's.
	f       vfs.File // active segment, write handle
	seg     *segment
	off     int64 // where the next frame goes in seg
	lastIdx int64 // offset of the last 'P' index entry in seg, -1 if none
	// zeroed is where the zero-filled, synced part of the active segment
	// ends (see extend); 0 when the file cannot be truncated and so is
	// never extended ahead of its frames.
	zeroed int64
}

type recentEvent struct {
	stream   string
	version  uint64
	position uint64
	hash     events.Hash
}

// recentIDs remembers the ids appended that callers' index lookups may have
// missed: those of groups indexed less than recentKeep groups ago, or not
// yet. It keeps them in epochs of recentKeep groups, so
// forgetting is dropping a whole map rather than deleting id by id.
type recentIDs struct {
	epochs []recentEpoch // oldest first
}

type recentEpoch struct {
	first, last uint64 // sequence numbers of the groups it holds
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

// prune forgets the epochs whose groups were all indexed at least
// recentKeep groups before indexed.
func (r *recentIDs) prune(indexed uint64) {
	n := 0
	for n < len(r.epochs)-1 && r.epochs[n].last+recentKeep <= indexed {
		n++
	}
	r.epochs = r.epochs[n:]
}

// frameRef remembers where in a group's buf one request's frame was encoded.
type frameRef struct {
	req        *appendReq
	start, end int
	posEntry   bool // the frame gets a 'P' index entry; set by the leader
}

// Append implements events.Store. If ctx ends after the events joined a
// write group, Append returns ctx's error and the append may still
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
	req, _, err := s.prepare(stream, expect, evs, s.cfg.now(), false)
	if err != nil {
		return events.AppendResult{}, err
	}
	reqs := [1]*appendReq{req}
	joined, err := s.commit(ctx, reqs[:])
	switch {
	case err != nil && joined:
		return events.AppendResult{}, fmt.Errorf("embedded: append to %s: outcome unknown: %w", stream, err)
	case err != nil:
		return events.AppendResult{}, err
	}
	return req.res, req.err
}

// prepare validates an append, computes its content digests and looks its
// ids up in the index: everything that can be done before joining a group.
// invalid reports that err is the append's validation error. With owned,
// the store keeps and changes evs itself rather than a copy.
func (s *Store) prepare(stream string, expect events.Expect, evs []events.Event, now time.Time, owned bool) (_ *appendReq, invalid bool, _ error) {
	prepared := evs
	var err error
	if owned {
		err = events.PrepareOwnedAppend(stream, evs, now)
	} else {
		prepared, err = events.PrepareAppend(stream, evs, now)
	}
	if err != nil {
		return nil, true, err
	}
	req := &appendReq{stream: stream, expect: expect, evs: prepared}
	if len(prepared) == 1 {
		req.digests = req.digest1[:]
	} else {
		req.digests = make([]events.Hash, len(prepared))
	}
	for i := range prepared {
		req.digests[i] = events.ContentDigest(&prepared[i])
	}
	if err := s.lookupIDs(req); err != nil {
		return nil, false, err
	}
	return req, false, nil
}

// commit decides reqs, in order and with no other append between them, as
// members of the filling write group, and waits until the group is done.
// joined reports whether they joined a group: an error then means their
// outcome is unknown (ctx ended); otherwise it is ErrClosed. Each request's
// own outcome is in its res and err.
func (s *Store) commit(ctx context.Context, reqs []*appendReq) (joined bool, err error) {
	s.gmu.Lock()
	if s.closingAppends {
		s.gmu.Unlock()
		return false, events.ErrClosed
	}
	if err := s.failure(); err != nil {
		s.gmu.Unlock()
		for _, r := range reqs {
			r.err = fmt.Errorf("embedded: append to %s: %w", r.stream, err)
		}
		return true, nil
	}
	g := s.filling
	s.w.recent.prune(s.indexed.Load().seq)
	for _, r := range reqs {
		s.decide(r, g)
		g.reqs = append(g.reqs, r)
	}
	lead := !g.hasLeader
	if lead {
		g.hasLeader = true
		s.leaders.Add(1)
	}
	full := len(g.buf) >= s.cfg.maxBatch
	if full {
		s.rotate(g) // later appends form the next group
	}
	if g.lingering && (full || s.outstanding.Load() <= int64(len(g.reqs))) {
		g.lingering = false
		g.wake <- struct{}{}
	}
	s.gmu.Unlock()
	if lead {
		s.lead(g)
		return true, nil
	}
	select {
	case <-g.done:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	}
}

// rotate makes a new group the filling one after g, which takes no more
// members. Call with gmu held.
func (s *Store) rotate(g *batch) {
	w := &s.w
	g.after.head = events.Head{Position: w.nextPos - 1, Hash: w.last}
	g.maxID = w.maxID
	s.filling = s.newGroup(g)
}

func (s *Store) newGroup(prev *batch) *batch {
	s.w.seq++
	return &batch{seq: s.w.seq, prev: prev, done: make(chan struct{})}
}

// lead writes and syncs g as its leader: it waits for the group before g
// to be done (appends keep joining g meanwhile), lingers briefly for
// appends still on their way, seals g, writes it with one write and makes
// it durable with one fdatasync, publishes it and closes g.done. Leaders
// thus take turns in group order, one group syncing while the next fills.
// The leader carries on whatever its own ctx does: the others depend on it.
func (s *Store) lead(g *batch) {
	defer s.leaders.Done()
	if g.prev != nil {
		<-g.prev.done
		g.prev = nil
	}
	s.linger(g)
	s.gmu.Lock()
	if s.filling == g {
		s.rotate(g)
	}
	s.gmu.Unlock()
	s.write(g)
	s.publish(g)
	if len(g.frames) > 0 {
		s.synced <- g
	}
	close(g.done)
}

// linger waits, at most lingerFor, while appends are in flight that are
// not in g: on their way in, or just acknowledged by the previous group
// and about to append again. Waiting a little for them makes one write and
// one sync cover every appender, instead of splitting them into groups
// that each pay a sync. The last of them to join wakes the leader.
func (s *Store) linger(g *batch) {
	s.gmu.Lock()
	if s.filling != g || s.outstanding.Load() <= int64(len(g.reqs)) {
		s.gmu.Unlock()
		return
	}
	if g.wake == nil {
		g.wake = make(chan struct{}, 1)
	}
	g.lingering = true
	s.gmu.Unlock()
	t := s.lingerTimer
	t.Reset(s.lingerFor())
	select {
	case <-g.wake:
	case <-t.C:
	}
	t.Stop()
}

// lookupIDs looks the request's ids up in the index, on the caller's
// goroutine before it joins a group, so that the id check under gmu is
// nearly always a comparison with the greatest id in the log.
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

func (s *Store) failure() error {
	if !s.hasFailed.Load() {
		return nil
	}
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
		s.hasFailed.Store(true)
		s.cfg.logger.Error("event log failed; appends are refused until the store is reopened", "err", err)
	}
}

// decide checks r against the log as the writer knows it (every earlier
// append, durable or not) and, when it is accepted, assigns versions,
// positions and hashes and encodes its frame onto g.buf. Otherwise r.res
// (an idempotent repeat) or r.err is set. Call with gmu held.
func (s *Store) decide(r *appendReq, g *batch) {
	w := &s.w
	cur, err := s.streamVersion(r.stream)
	if err != nil {
		r.err = fmt.Errorf("embedded: append to %s: %w", r.stream, err)
		return
	}
	if done := s.checkIDs(r); done {
		return
	}
	if !r.expect.Allows(cur) {
		r.err = &events.WrongExpectedVersionError{Stream: r.stream, Expected: r.expect, Actual: cur}
		return
	}
	prev := w.last
	for i := range r.evs {
		e := &r.evs[i]
		e.Version = cur + 1 + uint64(i)
		e.Position = w.nextPos + uint64(i)
		e.PrevHash = prev
		e.Hash = events.Link(prev, e.Position, e.Version, r.digests[i])
		prev = e.Hash
		w.recent.add(g.seq, e.ID, recentEvent{stream: r.stream, version: e.Version, position: e.Position, hash: e.Hash})
		if bytes.Compare(e.ID[:], w.maxID[:]) > 0 {
			w.maxID = e.ID
		}
	}
	if g.buf == nil {
		g.buf = getBuf()
	}
	start := len(g.buf)
	g.buf = appendFrame(g.buf, w.last, r.evs)
	g.refs = append(g.refs, frameRef{req: r, start: start, end: len(g.buf)})
	n := uint64(len(r.evs))
	r.res = events.AppendResult{
		FirstVersion: cur + 1, LastVersion: cur + n,
		FirstPosition: w.nextPos, LastPosition: w.nextPos + n - 1,
		Hash: prev,
	}
	w.streams[r.stream] = cur + n
	w.nextPos += n
	w.last = prev
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

// write writes g's frames to the active segment with one write, rolling to
// a new segment first when the active one is full, and makes them durable
// with one fdatasync; or, if the store failed (now or before), puts or
// leaves it in the failed state. Called by g's leader.
func (s *Store) write(g *batch) {
	w := &s.w
	err := s.failure()
	if err == nil && len(g.refs) > 0 {
		err = s.writeFrames(g)
	}
	putBuf(g.buf)
	g.buf = nil
	g.after.end = loc{w.seg.first, w.off}
	if err != nil {
		s.fail(err)
	}
}

func (s *Store) writeFrames(g *batch) error {
	w := &s.w
	if w.off > segmentHeaderLen && w.off+int64(len(g.buf)) > s.cfg.segmentSize {
		end := w.off
		sealed, err := s.roll(g.refs[0].req.evs[0].Position)
		if err != nil {
			return err
		}
		if err := errors.Join(sealSegment(sealed, end), sealed.Close()); err != nil {
			return fmt.Errorf("seal segment: %w", err)
		}
	}
	g.frames = make([]indexedFrame, len(g.refs))
	for i := range g.refs {
		fr := &g.refs[i]
		off := w.off + int64(fr.start)
		fr.posEntry = w.lastIdx < 0 || off-w.lastIdx >= posIndexEvery
		if fr.posEntry {
			w.lastIdx = off
		}
		r := fr.req
		g.frames[i] = indexedFrame{stream: r.stream, lastVersion: r.res.LastVersion, run: run{
			firstVersion: r.res.FirstVersion, firstPos: r.res.FirstPosition,
			frame: loc{w.seg.first, off}, frameLen: uint32(fr.end - fr.start),
		}}
	}
	if err := s.extend(w.off + int64(len(g.buf))); err != nil {
		return err
	}
	_, err := w.f.WriteAt(g.buf, w.off)
	s.stats.writes.Add(1)
	w.off += int64(len(g.buf))
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	select {
	case s.syncing <- struct{}{}: // the index loop may work now; see awaitSync
	default:
	}
	t0 := time.Now()
	err = w.f.SyncData()
	s.lastSync.Store(int64(time.Since(t0)))
	s.stats.syncs.Add(1)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// roll seals the active segment and starts a new one whose first position
// is first. It returns the sealed segment's write handle, which the leader
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
	w.zeroed = extendable(f)
	return sealed, nil
}

// zeroChunk is how far ahead of its frames the active segment is filled
// with zeros. Syncing a write that grows a file also commits the new size
// to the file system's journal; syncing a write over blocks that are
// already allocated and durable does not. On ext4 here that halves the time
// of a group's fdatasync (test/bench append, and a raw probe: 64 records
// of 256 B per sync took 237 us growing the file and 123 us within zeros
// written ahead 256 KiB at a time). The zeros cost one extra write of each
// block, in the background of the disk's work.
//
// A zero frame length ends the written part of a segment, so recovery
// reads the zeros as the end of the log (see truncateTail); a sealed
// segment is cut back to its last frame before the next one receives any
// (sealSegment), so readers never meet zeros inside the log.
const zeroChunk = 256 << 10

var zeros [zeroChunk]byte

// extend makes sure the active segment is zero-filled up to at least end
// before frames are written there: when end passes the zeroed part, it
// writes the next chunk of zeros after end. The group's own sync then
// makes the zeros and the file's new size durable with its frames, so
// later groups sync within allocated blocks.
func (s *Store) extend(end int64) error {
	w := &s.w
	if w.zeroed == 0 || end <= w.zeroed {
		return nil
	}
	from := max(w.zeroed, end)
	if _, err := w.f.WriteAt(zeros[:], from); err != nil {
		return fmt.Errorf("extend segment: %w", err)
	}
	w.zeroed = from + zeroChunk
	return nil
}

// truncater is a file that can be cut to a size: the OS's files can,
// Pebble's in-memory ones cannot.
type truncater interface{ Truncate(size int64) error }

// extendable returns where the zeroed part of a new segment file starts
// (its header's end), or 0 when f cannot be truncated: zeros written
// ahead could not be cut off when the segment is sealed.
func extendable(f vfs.File) int64 {
	if _, ok := f.(truncater); ok {
		return segmentHeaderLen
	}
	return 0
}

// sealSegment cuts a full segment back to end, its last frame's end
// (dropping the zeros written ahead), and syncs it. A crash before this is
// durable leaves zeros after the sealed segment's frames; recovery then
// finds the next segment empty (no frame is written to it before this
// returns), cuts the zeros and removes it.
func sealSegment(f vfs.File, end int64) error {
	if t, ok := f.(truncater); ok {
		if err := t.Truncate(end); err != nil {
			return err
		}
		return f.Sync()
	}
	return f.SyncData()
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

// lingerFor is the longest a leader waits for appends that are on their way:
// as long as the last sync took, within [50us, 2ms]. Waiting longer than a
// sync costs would lose more than it gains.
func (s *Store) lingerFor() time.Duration {
	return min(max(time.Duration(s.lastSync.Load()), 50*time.Microsecond), 2*time.Millisecond)
}

// maxSyncBuf bounds the group buffers kept for reuse.
const maxSyncBuf = 16 << 20

var bufs = sync.Pool{New: func() any { return new([]byte) }}

func getBuf() []byte { return (*bufs.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) > 0 && cap(b) <= maxSyncBuf {
		b = b[:0]
		bufs.Put(&b)
	}
}

// indexLoop commits the index entries of published groups, off the path of
// acknowledgements, then drops them from Store.pending. Append's callers
// look ids up in the index only for groups up to Store.indexed.seq, and the
// writer remembers the ids of later ones.
func (s *Store) indexLoop() {
	defer close(s.stopped)
	var key []byte
	var bs []*batch
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	for b := range s.synced {
		// Gather indexBatchGroups groups, or what came until the log went
		// quiet, for one commit, made while a sync runs (see awaitSync).
		bs = append(bs[:0], b)
		nevents := groupEvents(b)
		for {
			quiet := !s.awaitSync(idle)
		more:
			for len(bs) < cap(s.synced) {
				select {
				case nb, ok := <-s.synced:
					if !ok {
						quiet = true
						break more
					}
					bs = append(bs, nb)
					nevents += groupEvents(nb)
				default:
					break more
				}
			}
			if quiet || len(bs) >= indexBatchGroups || nevents >= indexBatchEvents {
				break
			}
		}
		err := s.failure()
		if err == nil {
			key, err = s.index(bs, key)
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
		clear(bs)
	}
}

// indexBatchGroups is how many write groups the index loop gathers into
// one commit while the log is busy. Each append puts a stream-run key into
// the index, and under load a group holds about one append per stream;
// the memtable searches for the place of each such key from its top, but
// inserts a key next to the one before it almost for free. With the runs
// of many groups in one batch, sorted, a stream's runs are neighbours:
// 64 writers appending single events spent 1.4 us per event indexing with
// a commit every 2 groups, 0.9 us with 16 (the memtable's share of it
// less than half). Readers find the groups not yet indexed in
// Store.pending, as before.
//
// Groups of large appends gain nothing from it (a run key covers many
// events) and their ids only take longer to sort, so gathering also stops
// at indexBatchEvents.
const (
	indexBatchGroups = 16
	indexBatchEvents = 4096
)

// groupEvents is the number of events g wrote.
func groupEvents(g *batch) int {
	n := 0
	for _, fr := range g.refs {
		n += len(fr.req.evs)
	}
	return n
}

// indexDelay is the longest the index loop waits for a group's sync to
// start before indexing anyway (the log went quiet).
const indexDelay = time.Millisecond

// awaitSync waits until a leader starts a sync, or indexDelay passes; it
// reports which.
//
// Under load, the time between two syncs is when the appenders of the last
// group wake, prepare their next appends and join the next group; the sync
// itself leaves the CPUs idle. Indexing in that gap would take a core from
// the appenders and delay the next sync (the 64-writer append benchmark
// spent a third of each cycle there), so the index loop does its work while
// the disk is busy instead.
func (s *Store) awaitSync(idle *time.Timer) (synced bool) {
	select {
	case <-s.syncing: // a sync that started before this group was handed over
	default:
	}
	idle.Reset(indexDelay)
	defer idle.Stop()
	select {
	case <-s.syncing:
		return true
	case <-idle.C:
		return false
	}
}

// index commits the index entries of bs and the checkpoint after them in
// one Pebble batch. The entries go in key order (ids, then positions, then
// stream runs by stream and version): the memtable inserts them fastest
// that way.
func (s *Store) index(bs []*batch, key []byte) ([]byte, error) {
	pb := s.idx.NewBatch()
	defer pb.Close()
	var ids []indexID
	var rs []*indexedFrame
	for _, b := range bs {
		for i, fr := range b.refs {
			for j := range fr.req.evs {
				ids = append(ids, indexID{fr.req.evs[j].ID, fr.req.evs[j].Position})
			}
			rs = append(rs, &b.frames[i])
		}
	}
	slices.SortFunc(ids, compareIndexIDs)
	var v [8]byte
	for _, e := range ids {
		key = append(append(key[:0], prefixID), e.id[:]...)
		binary.BigEndian.PutUint64(v[:], e.pos)
		pb.Set(key, v[:], nil)
	}
	last := bs[len(bs)-1]
	pb.Set(checkpointKey, encodeCheckpoint(checkpoint{head: last.after.head, end: last.after.end}), nil)
	for _, b := range bs {
		for i, fr := range b.refs {
			if fr.posEntry {
				f := &b.frames[i]
				key = indexPos(pb, key, f.firstPos, f.frame)
			}
		}
	}
	slices.SortFunc(rs, func(a, b *indexedFrame) int {
		if c := strings.Compare(a.stream, b.stream); c != 0 {
			return c
		}
		return cmp.Compare(a.lastVersion, b.lastVersion)
	})
	for _, f := range rs {
		key = indexRun(pb, key, f.stream, f.lastVersion, f.run)
	}
	if err := pb.Commit(pebble.NoSync); err != nil {
		err = fmt.Errorf("index: %w", err)
		s.fail(err)
		return key, err
	}
	return key, nil
}

type indexID struct {
	id  uuid.UUID
	pos uint64
}

// compareIndexIDs orders ids as their 16 bytes compare, as two big-endian
// words: the sort of a batch's ids took a tenth of the CPU of 256-event
// appends with bytes.Compare.
func compareIndexIDs(a, b indexID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a.id[:8]), binary.BigEndian.Uint64(b.id[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a.id[8:]), binary.BigEndian.Uint64(b.id[8:]))
}

// publish makes a durable group visible, keeping its frames in
// Store.pending until indexLoop has indexed them, or, if the store failed,
// fails every member that has no error of its own.
func (s *Store) publish(g *batch) {
	if err := s.failure(); err != nil {
		for _, r := range g.reqs {
			if r.err == nil {
				r.res = events.AppendResult{}
				r.err = fmt.Errorf("embedded: append to %s: outcome unknown: %w", r.stream, err)
			}
		}
		g.frames = nil
		return
	}
	s.mu.Lock()
	if len(g.frames) > 0 {
		s.pending = append(s.pending, g)
	}
	advanced := g.after.head.Position != s.durable.head.Position
	s.durable = g.after
	if advanced {
		close(s.notify)
		s.notify = make(chan struct{})
	}
	s.mu.Unlock()
	var n uint64
	for _, f := range g.frames { // idempotent repeats wrote no frame
		n += f.lastVersion - f.firstVersion + 1
	}
	s.stats.appends.Add(uint64(len(g.frames)))
	s.stats.events.Add(n)
}
