package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/logbook-fleet/logbook/events"
)

func mustOpen(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func newEvents(n int, tag string) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{ID: events.NewID(), Type: "test.v1.Thing", Data: []byte(fmt.Sprintf("%s-%d", tag, i))}
	}
	return evs
}

// fill appends n single-event appends spread over a few streams.
func fill(t *testing.T, s *Store, n int) []events.AppendResult {
	t.Helper()
	var res []events.AppendResult
	for i := range n {
		r, err := s.Append(context.Background(), fmt.Sprintf("unit-u%d", i%3), events.Any, newEvents(1, fmt.Sprint(i))...)
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		res = append(res, r)
	}
	return res
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readAllPositions(t *testing.T, s *Store) []uint64 {
	t.Helper()
	var got []uint64
	for e, err := range s.ReadAll(context.Background(), 0, events.Filter{}) {
		if err != nil {
			t.Fatalf("ReadAll: %v", err)
		}
		got = append(got, e.Position)
	}
	return got
}

func TestTornTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	fill(t, s, 10)
	head, _ := s.Head(context.Background())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segmentFiles(t, dir)[0]
	good, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// An eleventh append whose frame reached the disk only in part.
	var torn []byte
	evs := newEvents(3, "torn")
	for i := range evs {
		evs[i].Stream, evs[i].Position, evs[i].Version = "unit-u9", head.Position+1+uint64(i), uint64(i)+1
	}
	// A frame ending in a zero byte, cut before it and written over zeros,
	// would be whole again.
	evs[len(evs)-1].Metadata.Principal = "operator"
	torn = appendFrame(torn, head.Hash, evs)
	end := framesEnd(t, good)
	// The torn frame lands in the zeros written ahead of the frames (see
	// zeroChunk), or at the end of a file without them.
	for _, ahead := range []bool{true, false} {
		for _, cut := range []int{3, frameHeaderLen, len(torn) / 2, len(torn) - 1} {
			t.Run(fmt.Sprintf("zeros=%v/cut%d", ahead, cut), func(t *testing.T) {
				file := append(bytes.Clone(good[:end]), torn[:cut]...)
				if ahead {
					file = bytes.Clone(good)
					if len(file) < end+cut {
						t.Fatalf("segment of %d bytes has no zeros written ahead of its frames (end %d)", len(file), end)
					}
					copy(file[end:], torn[:cut])
				}
				if err := os.WriteFile(seg, file, 0o644); err != nil {
					t.Fatal(err)
				}
				s := mustOpen(t, dir)
				defer s.Close()
				if h, _ := s.Head(context.Background()); h != head {
					t.Fatalf("head after recovery = %d, want %d", h.Position, head.Position)
				}
				if got := readAllPositions(t, s); len(got) != 10 {
					t.Fatalf("read %d events, want 10", len(got))
				}
				if _, err := s.Verify(context.Background()); err != nil {
					t.Fatalf("Verify: %v", err)
				}
				// The log goes on after the cut.
				r, err := s.Append(context.Background(), "unit-u9", events.NoStream, newEvents(2, "after")...)
				if err != nil || r.FirstPosition != 11 {
					t.Fatalf("Append after recovery = %+v, %v; want first position 11", r, err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s2 := mustOpen(t, dir)
				defer s2.Close()
				if got := readAllPositions(t, s2); len(got) != 12 {
					t.Fatalf("after reopen read %d events, want 12", len(got))
				}
				if _, err := s2.Verify(context.Background()); err != nil {
					t.Fatalf("Verify after reopen: %v", err)
				}
				// Restore the pre-append state for the next cut.
				s2.Close()
				os.RemoveAll(filepath.Join(dir, "index"))
				if err := os.WriteFile(seg, good, 0o644); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// framesEnd returns where the frames of a segment's contents end: at the
// first zero frame length, or the end of data.
func framesEnd(t *testing.T, data []byte) int {
	t.Helper()
	off := segmentHeaderLen
	for off+frameHeaderLen <= len(data) {
		n := frameLen(data[off:])
		if n == 0 {
			break
		}
		if off+n > len(data) {
			t.Fatalf("frame at %d runs past the end (%d bytes)", off, n)
		}
		off += n
	}
	return off
}

func TestVerifyNamesFlippedByte(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	res := fill(t, s, 20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segmentFiles(t, dir)[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte inside the 8th event's frame: find it by its payload.
	target := res[7].FirstPosition
	i := bytes.Index(data, []byte("7-0"))
	if i < 0 {
		// payloads are "<i>-0"; fall back to the tag search below
		i = bytes.Index(data, []byte(fmt.Sprint(7)+"-0"))
	}
	if i < 0 {
		t.Fatal("payload of the 8th event not found in the segment")
	}
	data[i] ^= 0x40
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir)
	defer s.Close()
	_, err = s.Verify(context.Background())
	var ce *events.CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, events.ErrCorrupt) {
		t.Fatalf("Verify = %v, want a CorruptionError", err)
	}
	if ce.Position != target {
		t.Fatalf("Verify names position %d, want %d (%v)", ce.Position, target, err)
	}
}

func TestVerifyDetectsRewrittenHistory(t *testing.T) {
	// A forger who rewrites an event and fixes its frame checksum is still
	// caught by the hash chain.
	s := mustOpen(t, "mem", InMemory())
	defer s.Close()
	fill(t, s, 5)
	seg := s.segs[0]
	d, _, _ := s.state()
	buf := make([]byte, d.end.offset)
	if err := s.readAt(seg, buf, 0); err != nil {
		t.Fatal(err)
	}
	off := int64(segmentHeaderLen)
	var f frame
	for range 2 { // skip to the third frame
		if err := decodeFrame(buf[off:], nil, &f); err != nil {
			t.Fatal(err)
		}
		off += int64(f.size)
	}
	if err := decodeFrame(buf[off:], nil, &f); err != nil {
		t.Fatal(err)
	}
	forged := f.events
	forged[0].Data = []byte("forged")
	out := appendFrame(nil, f.prevHash, forged) // keeps the old hash
	w, err := s.fs.OpenReadWrite(seg.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	tail := append(out, buf[off+int64(f.size):]...)
	if _, err := w.WriteAt(tail, off); err != nil {
		t.Fatal(err)
	}
	w.Close()
	s.mu.Lock()
	s.durable.end.offset += int64(len(out) - f.size)
	s.mu.Unlock()
	_, err = s.Verify(context.Background())
	var ce *events.CorruptionError
	if !errors.As(err, &ce) || ce.Position != 3 {
		t.Fatalf("Verify = %v, want corruption at position 3", err)
	}
}

func TestIndexRebuiltFromLog(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, WithSegmentSize(4096))
	fill(t, s, 200)
	head, _ := s.Head(context.Background())
	s.Close()
	if n := len(segmentFiles(t, dir)); n < 3 {
		t.Fatalf("%d segments, want several", n)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, WithSegmentSize(4096))
	defer s.Close()
	if h, _ := s.Head(context.Background()); h != head {
		t.Fatalf("head after rebuild = %+v, want %+v", h, head)
	}
	n := 0
	for e, err := range s.ReadStream(context.Background(), "unit-u1", 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if e.Version != uint64(n) {
			t.Fatalf("version %d at index %d", e.Version, n)
		}
	}
	if n != 67 {
		t.Fatalf("unit-u1 has %d events, want 67", n)
	}
	// Idempotency survives the rebuild: the id index was rebuilt too.
	_, err := s.Append(context.Background(), "unit-u1", events.Exactly(uint64(n)), newEvents(1, "x")...)
	if err != nil {
		t.Fatal(err)
	}
}

func TestLogShorterThanIndexFailsOpen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	fill(t, s, 10)
	s.Close()
	seg := segmentFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	// The active segment is zero-filled ahead of its frames (see
	// zeroChunk): cut into the frames, not the zeros.
	end := len(bytes.TrimRight(data, "\x00"))
	if end == len(data) {
		t.Fatalf("segment of %d bytes has no zeros written ahead", len(data))
	}
	if err := os.WriteFile(seg, data[:end-40], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir)
	if !errors.Is(err, events.ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt (acknowledged events missing)", err)
	}
}

func TestTornSegmentHeaderIsRemoved(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	fill(t, s, 4)
	s.Close()
	// A roll that crashed before the new segment's header was durable.
	if err := os.WriteFile(filepath.Join(dir, "log", segmentName(5)), []byte("LOG"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir)
	defer s.Close()
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments after recovery, want 1", n)
	}
	fill(t, s, 2)
	if got := readAllPositions(t, s); len(got) != 6 {
		t.Fatalf("read %d events, want 6", len(got))
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	defer s.Close()
	if _, err := Open(context.Background(), dir); err == nil {
		t.Fatal("second Open of the same directory succeeded")
	}
}

// Sealed segments hold frames only: the zeros written ahead of the active
// segment's frames are cut off when it is sealed.
func TestSealedSegmentsEndAtTheirLastFrame(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, WithSegmentSize(4096))
	fill(t, s, 60)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	for i, seg := range segs {
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		end := framesEnd(t, data)
		if last := i == len(segs)-1; !last && end != len(data) {
			t.Errorf("sealed segment %s: %d bytes after its frames end at %d", filepath.Base(seg), len(data)-end, end)
		} else if last && len(data) < end+zeroChunk/2 {
			t.Errorf("active segment %s: %d bytes, frames end at %d: no zeros written ahead", filepath.Base(seg), len(data), end)
		}
	}
}

// A crash between sealing a segment and cutting its zeros off (the next
// segment exists, with no frame yet): recovery keeps every frame, drops the
// zeros and the empty segment, and the log goes on.
func TestCrashWhileSealingSegment(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, WithSegmentSize(4096))
	fill(t, s, 40)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	if len(segs) < 2 {
		t.Fatalf("%d segments, want at least 2", len(segs))
	}
	// The last sealed segment keeps zeros after its frames, and the one
	// after it holds only its header; the index never saw the latter.
	sealed, next := segs[len(segs)-2], segs[len(segs)-1]
	data, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, seg := range segs[:len(segs)-1] {
		d, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		want += countFrames(t, d)
	}
	if err := os.WriteFile(sealed, append(data, make([]byte, zeroChunk)...), 0o644); err != nil {
		t.Fatal(err)
	}
	hdr, err := os.ReadFile(next)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(next, hdr[:segmentHeaderLen], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, dir, WithSegmentSize(4096))
	defer s.Close()
	if got := readAllPositions(t, s); len(got) != want {
		t.Fatalf("read %d events after recovery, want %d", len(got), want)
	}
	if _, err := s.Verify(context.Background()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := segmentFiles(t, dir); len(got) != len(segs)-1 {
		t.Fatalf("%d segments after recovery, want %d (the empty one removed)", len(got), len(segs)-1)
	}
	fill(t, s, 30)
	if got := readAllPositions(t, s); len(got) != want+30 {
		t.Fatalf("read %d events after appending, want %d", len(got), want+30)
	}
}

// countFrames counts the frames of a segment's contents (one event each in
// these tests).
func countFrames(t *testing.T, data []byte) int {
	t.Helper()
	n, off := 0, segmentHeaderLen
	for off < framesEnd(t, data) {
		off += frameLen(data[off:])
		n++
	}
	return n
}
