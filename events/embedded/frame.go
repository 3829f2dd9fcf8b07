package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/logbook-fleet/logbook/events"
)

// A segment is a sequence of frames after a 16-byte header. A frame holds the
// events of exactly one Append call, so a torn frame loses a whole append and
// never part of one:
//
//	frame  = length u32 | crc u32 | body            (little-endian)
//	body   = firstPosition u64 | firstVersion u64 | count u32 |
//	         stream (uvarint length + bytes) | prevHash [32] | event...
//	event  = time i64 (unix ns) | id [16] | hash [32] |
//	         type, data, correlation id, causation id, principal
//	         (each a uvarint length + bytes)
//
// length counts the body; crc is CRC-32C over the length bytes and the body.
// Positions and versions inside a frame are consecutive. A length of zero
// marks the end of the written part of a segment.
const (
	frameHeaderLen = 8
	// maxFrameBody bounds the body a reader accepts; an Append is at most
	// events.MaxAppendLen of data plus per-event overhead.
	maxFrameBody = events.MaxAppendLen + events.MaxAppendEvents*(8+16+32+5*5) +
		events.MaxAppendEvents*(events.MaxTypeLen+3*events.MaxMetadataFieldLen) + 1024

	segmentHeaderLen = 16
	segmentMagic     = "LOGBOOK\x01"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errFrame reports an undecodable frame; the caller decides whether it is a
// torn tail (truncate) or corruption (report).
var errFrame = errors.New("bad frame")

// frame is a decoded frame. Its events alias the buffer it was decoded from.
type frame struct {
	firstPos uint64
	firstVer uint64
	stream   string
	prevHash events.Hash
	events   []events.Event
	size     int // bytes on disk, header included
}

func (f *frame) lastPos() uint64 { return f.firstPos + uint64(len(f.events)) - 1 }

// appendFrame encodes one append's events (already assigned positions,
// versions and hashes) onto buf.
func appendFrame(buf []byte, prevHash events.Hash, evs []events.Event) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, frameHeaderLen)...)
	first := &evs[0]
	buf = binary.LittleEndian.AppendUint64(buf, first.Position)
	buf = binary.LittleEndian.AppendUint64(buf, first.Version)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(evs)))
	buf = appendString(buf, first.Stream)
	buf = append(buf, prevHash[:]...)
	for i := range evs {
		e := &evs[i]
		buf = binary.LittleEndian.AppendUint64(buf, uint64(e.Time.UnixNano()))
		buf = append(buf, e.ID[:]...)
		buf = append(buf, e.Hash[:]...)
		buf = appendString(buf, e.Type)
		buf = appendString(buf, e.Data)
		buf = appendString(buf, e.Metadata.CorrelationID)
		buf = appendString(buf, e.Metadata.CausationID)
		buf = appendString(buf, e.Metadata.Principal)
	}
	body := buf[start+frameHeaderLen:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	crc := crc32.Update(0, crcTable, buf[start:start+4])
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Update(crc, crcTable, body))
	return buf
}

func appendString[T string | []byte](buf []byte, s T) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// frameLen returns the full size of the frame starting at b, 0 when b starts
// with the zero end marker, or -1 when b is too short to tell.
func frameLen(b []byte) int {
	if len(b) < frameHeaderLen {
		return -1
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 {
		return 0
	}
	if n > maxFrameBody {
		// Not a length we ever write: report it as a frame the decoder
		// will reject, never as a request to read gigabytes.
		return frameHeaderLen
	}
	return frameHeaderLen + int(n)
}

// interner deduplicates the strings a reader decodes (stream and type names
// repeat across events); it is owned by one reader.
type interner map[string]string

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	if len(in) > 4096 {
		clear(in)
	}
	s := string(b)
	in[s] = s
	return s
}

// decodeFrame decodes the frame at the start of b (which must hold all of
// it; see frameLen). Events' Data alias b. in may be nil.
func decodeFrame(b []byte, in interner, f *frame) error {
	n := frameLen(b)
	if n <= frameHeaderLen || n > len(b) {
		return fmt.Errorf("%w: length %d of %d available", errFrame, n, len(b))
	}
	crc := crc32.Update(0, crcTable, b[:4])
	if crc32.Update(crc, crcTable, b[frameHeaderLen:n]) != binary.LittleEndian.Uint32(b[4:]) {
		return fmt.Errorf("%w: checksum mismatch", errFrame)
	}
	d := decoder{b: b[frameHeaderLen:n]}
	f.size = n
	f.firstPos = d.u64()
	f.firstVer = d.u64()
	count := d.u32()
	streamB := d.bytes()
	if d.err == nil && (count == 0 || count > events.MaxAppendEvents || f.firstPos == 0 || f.firstVer == 0) {
		d.err = fmt.Errorf("%w: count %d, position %d, version %d", errFrame, count, f.firstPos, f.firstVer)
	}
	d.fixed(f.prevHash[:])
	if d.err != nil {
		return d.err
	}
	if in != nil {
		f.stream = in.get(streamB)
	} else {
		f.stream = string(streamB)
	}
	if cap(f.events) >= int(count) {
		f.events = f.events[:count]
	} else if int(count) <= len(d.b) { // each event takes well over a byte
		f.events = make([]events.Event, count)
	} else {
		return fmt.Errorf("%w: %d events in %d bytes", errFrame, count, len(d.b))
	}
	prev := f.prevHash
	for i := range f.events {
		e := &f.events[i]
		*e = events.Event{Stream: f.stream, Position: f.firstPos + uint64(i), Version: f.firstVer + uint64(i), PrevHash: prev}
		e.Time = time.Unix(0, int64(d.u64())).UTC()
		d.fixed(e.ID[:])
		d.fixed(e.Hash[:])
		typ := d.bytes()
		e.Data = d.bytes()
		corr, caus, principal := d.bytes(), d.bytes(), d.bytes()
		if d.err != nil {
			return d.err
		}
		if in != nil {
			e.Type = in.get(typ)
		} else {
			e.Type = string(typ)
		}
		e.Metadata = events.Metadata{CorrelationID: str(corr), CausationID: str(caus), Principal: str(principal)}
		if len(e.Data) == 0 {
			e.Data = nil
		}
		prev = e.Hash
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errFrame, len(d.b))
	}
	return nil
}

func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

// decoder reads little-endian fields, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) short(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", errFrame, what)
	}
	d.b = nil
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.short("u64")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) u32() uint32 {
	if len(d.b) < 4 {
		d.short("u32")
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) fixed(dst []byte) {
	if len(d.b) < len(dst) {
		d.short("fixed field")
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

// bytes returns a length-prefixed field, capped to its length so appending
// to it never overwrites the next field.
func (d *decoder) bytes() []byte {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.short("field")
		return nil
	}
	v := d.b[k : k+int(n) : k+int(n)]
	d.b = d.b[k+int(n):]
	return v
}

// checkChain recomputes the hash of every event of f, starting from prev.
// It returns the position of the first mismatch, or 0.
func checkChain(prev events.Hash, f *frame) (uint64, string) {
	if f.prevHash != prev {
		return f.firstPos, "previous hash does not match the hash of the event before"
	}
	for i := range f.events {
		e := &f.events[i]
		if events.ChainHash(e.PrevHash, e) != e.Hash {
			return e.Position, "hash does not match the event's content"
		}
	}
	return 0, ""
}
