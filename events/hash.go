package events

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// ChainHash returns the hash of e given the hash of its predecessor:
//
//	ChainHash(prev, e) = Link(prev, e.Position, e.Version, ContentDigest(e))
//
// Changing any byte of any event changes the hash of every event after it.
// The two levels let a store compute content digests in parallel, before an
// event's place in the log is known, and keep only Link on the serial path.
func ChainHash(prev Hash, e *Event) Hash {
	return Link(prev, e.Position, e.Version, ContentDigest(e))
}

// Link returns SHA-256 over prev, the position and the version (big-endian
// 64-bit) and the content digest: 80 bytes.
func Link(prev Hash, position, version uint64, digest Hash) Hash {
	var b [80]byte
	copy(b[:32], prev[:])
	binary.BigEndian.PutUint64(b[32:], position)
	binary.BigEndian.PutUint64(b[40:], version)
	copy(b[48:], digest[:])
	return sha256.Sum256(b[:])
}

var canonicalBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// ContentDigest returns SHA-256 over the canonical encoding of e's content
// (see AppendCanonical): everything an appender chooses, nothing the store
// assigns.
func ContentDigest(e *Event) Hash {
	bp := canonicalBufs.Get().(*[]byte)
	b := AppendCanonical((*bp)[:0], e)
	h := sha256.Sum256(b)
	if cap(b) <= 64<<10 {
		*bp = b
		canonicalBufs.Put(bp)
	}
	return h
}

// AppendCanonical appends the canonical encoding of e's content to buf: the
// time in nanoseconds since the Unix epoch (big-endian 64-bit), the 16-byte
// id, then stream, type, data, correlation id, causation id and principal,
// each as a uvarint length and its bytes. Position, version and the hashes
// are not part of it.
func AppendCanonical(buf []byte, e *Event) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.Time.UnixNano()))
	buf = append(buf, e.ID[:]...)
	buf = appendBytes(buf, e.Stream)
	buf = appendBytes(buf, e.Type)
	buf = appendBytes(buf, e.Data)
	buf = appendBytes(buf, e.Metadata.CorrelationID)
	buf = appendBytes(buf, e.Metadata.CausationID)
	buf = appendBytes(buf, e.Metadata.Principal)
	return buf
}

func appendBytes[T string | []byte](buf []byte, b T) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}
