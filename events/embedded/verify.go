package embedded

import (
	"context"
	"fmt"

	"github.com/logbook-fleet/logbook/events"
)

// Verify implements events.Store: it reads every segment from the start,
// checking segment headers, frame checksums, dense positions and the hash
// of every event, and returns the head it verified. Appends may continue
// meanwhile; Verify checks the log as it was when it started.
func (s *Store) Verify(ctx context.Context) (events.Head, error) {
	return s.VerifyProgress(ctx, nil)
}

// VerifyProgress is Verify reporting its progress: unless nil, progress is
// called on the calling goroutine with the head verified so far every 256
// frames, and must return quickly.
func (s *Store) VerifyProgress(ctx context.Context, progress func(verified events.Head)) (events.Head, error) {
	if s.closed.Load() {
		return events.Head{}, events.ErrClosed
	}
	v := s.view()
	d, segs := v.durableState, v.segs
	for _, seg := range segs {
		if seg.first > d.end.segment {
			break
		}
		if err := s.checkHeader(seg, readable(seg, d)); err != nil {
			return events.Head{}, err
		}
	}
	c := s.newCursor(v, scanChunk)
	c.i, c.off, c.next, c.positioned = 0, segmentHeaderLen, 1, true
	var head events.Head
	for n := 0; ; n++ {
		if n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return head, err
			}
			if progress != nil && n > 0 {
				progress(head)
			}
		}
		f, err := c.frame(d)
		if err != nil {
			return head, err
		}
		if f == nil {
			break
		}
		if pos, reason := checkChain(head.Hash, f); pos != 0 {
			return head, &events.CorruptionError{Position: pos, Reason: reason}
		}
		head = events.Head{Position: f.lastPos(), Hash: f.events[len(f.events)-1].Hash}
	}
	if head != d.head {
		return head, &events.CorruptionError{Position: head.Position + 1, Reason: fmt.Sprintf(
			"the log ends at position %d but the store's head is %d", head.Position, d.head.Position)}
	}
	return head, nil
}
