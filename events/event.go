package events

import (
	"encoding/hex"
	"time"

	"github.com/google/uuid"
)

// Event is one entry of the log. Callers of Append fill ID, Type, Data,
// Metadata and optionally Time; the store assigns Stream, Version, Position,
// PrevHash and Hash.
//
// Events returned by a Store are owned by the caller; Data is never shared
// with the store's buffers.
type Event struct {
	// ID is the event's unique id and the idempotency key of Append.
	// Use NewID for a time-ordered UUIDv7.
	ID uuid.UUID
	// Stream is "<category>-<id>".
	Stream string
	// Version is 1-based within the stream.
	Version uint64
	// Position is the 1-based global position; positions are dense.
	Position uint64
	// Time is when the event was recorded. Append sets it to the current
	// time when it is zero; it is stored with nanosecond precision in UTC.
	Time time.Time
	// Type is the protobuf full name of the payload in Data.
	Type string
	// Data is the payload.
	Data []byte
	// Metadata links the event to the request that caused it.
	Metadata Metadata
	// PrevHash is the hash of the event at Position-1 (zero for position 1).
	PrevHash Hash
	// Hash is ChainHash(PrevHash, event).
	Hash Hash
}

// Metadata links an event to the request that caused it.
type Metadata struct {
	CorrelationID string
	CausationID   string
	Principal     string
}

// Hash is a SHA-256 digest in the hash chain.
type Hash [32]byte

// IsZero reports whether h is the zero hash (the predecessor of position 1).
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns h in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// NewID returns a new time-ordered event id (UUIDv7).
func NewID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// AppendResult describes where an Append put its events.
type AppendResult struct {
	// Stream versions of the first and last appended event.
	FirstVersion, LastVersion uint64
	// Global positions of the first and last appended event.
	FirstPosition, LastPosition uint64
	// Hash of the last appended event.
	Hash Hash
}

// Head names the end of the log: the position of the last durable event and
// its hash. The zero Head is an empty log.
type Head struct {
	Position uint64
	Hash     Hash
}

// Snapshot is the state of one stream's entity folded up to Version. Snapshots
// are a cache beside the log: losing them all is safe.
type Snapshot struct {
	Stream string
	// Version of the last event folded into State.
	Version uint64
	// Type is the protobuf full name of the state message.
	Type  string
	State []byte
	Time  time.Time
}
