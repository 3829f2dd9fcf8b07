package embedded

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/logbook-fleet/logbook/events"
)

// The index lives in Pebble beside the segments. It is a cache of the log:
// everything in it can be rebuilt by scanning the segments, and after a crash
// the part written since the last checkpoint is. Keys:
//
//	'P' position(8)                  -> segment(8) offset(8)      sparse: frame starts
//	'S' stream 0x00 lastVersion(8)   -> run                        one per append
//	'I' id(16)                       -> position(8)                one per event
//	'N' stream                       -> snapshot (logbookv1.Snapshot)
//	'M' "checkpoint"                 -> checkpoint
//
// Integers in keys are big-endian so they sort. Stream names never contain
// 0x00 (ValidateStream rejects control characters).
const (
	prefixPos      = 'P'
	prefixStream   = 'S'
	prefixID       = 'I'
	prefixSnapshot = 'N'
)

var checkpointKey = []byte("Mcheckpoint")

// posIndexEvery is the most bytes a reader scans from an indexed frame
// start to reach a position.
const posIndexEvery = 16 << 10

func posKey(pos uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixPos
	binary.BigEndian.PutUint64(k[1:], pos)
	return k
}

func streamKey(stream string, version uint64) []byte {
	k := make([]byte, 0, len(stream)+10)
	k = append(k, prefixStream)
	k = append(k, stream...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, version)
}

// streamPrefix returns the bounds of stream's run keys.
func streamBounds(stream string) (lower, upper []byte) {
	lower = append(append([]byte{prefixStream}, stream...), 0)
	upper = append(append([]byte{prefixStream}, stream...), 1)
	return lower, upper
}

func snapshotKey(stream string) []byte {
	return append([]byte{prefixSnapshot}, stream...)
}

// loc is where a frame starts on disk.
type loc struct {
	segment uint64 // first position of the segment (its name)
	offset  int64
}

func encodeLoc(l loc) []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, l.segment)
	binary.BigEndian.PutUint64(v[8:], uint64(l.offset))
	return v
}

func decodeLoc(v []byte) (loc, error) {
	if len(v) != 16 {
		return loc{}, fmt.Errorf("index: location is %d bytes, want 16", len(v))
	}
	return loc{segment: binary.BigEndian.Uint64(v), offset: int64(binary.BigEndian.Uint64(v[8:]))}, nil
}

// indexedFrame is a frame as a batch remembers it until it is indexed.
type indexedFrame struct {
	stream      string
	lastVersion uint64
	run
}

// run is one append's events of one stream: one frame.
type run struct {
	firstVersion uint64
	firstPos     uint64
	frame        loc
	frameLen     uint32
}

func encodeRun(r run) []byte {
	v := make([]byte, 36)
	binary.BigEndian.PutUint64(v, r.firstVersion)
	binary.BigEndian.PutUint64(v[8:], r.firstPos)
	binary.BigEndian.PutUint64(v[16:], r.frame.segment)
	binary.BigEndian.PutUint64(v[24:], uint64(r.frame.offset))
	binary.BigEndian.PutUint32(v[32:], r.frameLen)
	return v
}

func decodeRun(v []byte) (run, error) {
	if len(v) != 36 {
		return run{}, fmt.Errorf("index: run is %d bytes, want 36", len(v))
	}
	return run{
		firstVersion: binary.BigEndian.Uint64(v),
		firstPos:     binary.BigEndian.Uint64(v[8:]),
		frame:        loc{segment: binary.BigEndian.Uint64(v[16:]), offset: int64(binary.BigEndian.Uint64(v[24:]))},
		frameLen:     binary.BigEndian.Uint32(v[32:]),
	}, nil
}

// checkpoint is the end of the indexed log: the index holds every frame
// before end, whose last event is head.
type checkpoint struct {
	head events.Head
	end  loc // where the next frame goes
}

func encodeCheckpoint(c checkpoint) []byte {
	v := make([]byte, 0, 8+32+16)
	v = binary.BigEndian.AppendUint64(v, c.head.Position)
	v = append(v, c.head.Hash[:]...)
	return append(v, encodeLoc(c.end)...)
}

func decodeCheckpoint(v []byte) (checkpoint, error) {
	if len(v) != 56 {
		return checkpoint{}, fmt.Errorf("index: checkpoint is %d bytes, want 56", len(v))
	}
	var c checkpoint
	c.head.Position = binary.BigEndian.Uint64(v)
	copy(c.head.Hash[:], v[8:40])
	var err error
	c.end, err = decodeLoc(v[40:])
	return c, err
}

// indexFrame adds the entries readers need for one frame (one append's
// events, with positions and versions assigned) at location at to b: its
// stream run and, when posEntry, a position entry. key is scratch space,
// returned for reuse.
func indexFrame(b *pebble.Batch, key []byte, evs []events.Event, at loc, frameLen int, posEntry bool) []byte {
	first, last := &evs[0], &evs[len(evs)-1]
	if posEntry {
		key = indexPos(b, key, first.Position, at)
	}
	return indexRun(b, key, first.Stream, last.Version,
		run{firstVersion: first.Version, firstPos: first.Position, frame: at, frameLen: uint32(frameLen)})
}

// indexPos adds the position entry of a frame starting at position pos.
func indexPos(b *pebble.Batch, key []byte, pos uint64, at loc) []byte {
	key = binary.BigEndian.AppendUint64(append(key[:0], prefixPos), pos)
	b.Set(key, encodeLoc(at), nil)
	return key
}

// indexRun adds the run entry of a frame of stream ending at lastVersion.
func indexRun(b *pebble.Batch, key []byte, stream string, lastVersion uint64, r run) []byte {
	key = append(append(append(key[:0], prefixStream), stream...), 0)
	key = binary.BigEndian.AppendUint64(key, lastVersion)
	b.Set(key, encodeRun(r), nil)
	return key
}

// indexIDs adds the id entries of one frame's events to b.
func indexIDs(b *pebble.Batch, key []byte, evs []events.Event) []byte {
	var v [8]byte
	for i := range evs {
		key = append(append(key[:0], prefixID), evs[i].ID[:]...)
		binary.BigEndian.PutUint64(v[:], evs[i].Position)
		b.Set(key, v[:], nil)
	}
	return key
}
