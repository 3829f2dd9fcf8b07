package events

import (
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
)

// Limits every store enforces on Append.
const (
	// MaxTypeLen is the longest payload type name, in bytes.
	MaxTypeLen = 255
	// MaxMetadataFieldLen is the longest metadata field, in bytes.
	MaxMetadataFieldLen = 1024
	// MaxDataLen is the largest payload of one event.
	MaxDataLen = 4 << 20
	// MaxAppendLen is the largest total payload of one Append call.
	MaxAppendLen = 16 << 20
	// MaxAppendEvents is the most events one Append call may carry.
	MaxAppendEvents = 65536
)

// The range of event times a store accepts: those whose nanoseconds since
// the Unix epoch fit an int64, as ChainHash and stores encode them.
var (
	MinTime = time.Unix(0, math.MinInt64).UTC()
	MaxTime = time.Unix(0, math.MaxInt64).UTC()
)

// ValidateAppend checks the arguments of an Append before anything is
// written: the stream name, and for each event a non-zero id unique within
// the call, a type, a zero time or one within MinTime..MaxTime, and sizes
// within the limits above. Errors wrap ErrInvalidStreamName or
// ErrInvalidEvent and name the offending event.
func ValidateAppend(stream string, evs []Event) error {
	if err := ValidateStream(stream); err != nil {
		return err
	}
	if len(evs) == 0 {
		return fmt.Errorf("%w: append to %s carries no events", ErrInvalidEvent, stream)
	}
	if len(evs) > MaxAppendEvents {
		return fmt.Errorf("%w: append to %s carries %d events, at most %d allowed", ErrInvalidEvent, stream, len(evs), MaxAppendEvents)
	}
	total := 0
	var seen map[uuid.UUID]struct{}
	if len(evs) > 1 {
		seen = make(map[uuid.UUID]struct{}, len(evs))
	}
	for i := range evs {
		e := &evs[i]
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: event %d of append to %s: %s", ErrInvalidEvent, i, stream, fmt.Sprintf(format, args...))
		}
		switch {
		case e.ID == uuid.Nil:
			return bad("zero id")
		case e.Type == "":
			return bad("empty type")
		case len(e.Type) > MaxTypeLen:
			return bad("type longer than %d bytes", MaxTypeLen)
		case !e.Time.IsZero() && (e.Time.Before(MinTime) || e.Time.After(MaxTime)):
			return bad("time %v outside %d..%d", e.Time, MinTime.Year(), MaxTime.Year())
		case len(e.Data) > MaxDataLen:
			return bad("data is %d bytes, at most %d allowed", len(e.Data), MaxDataLen)
		case len(e.Metadata.CorrelationID) > MaxMetadataFieldLen,
			len(e.Metadata.CausationID) > MaxMetadataFieldLen,
			len(e.Metadata.Principal) > MaxMetadataFieldLen:
			return bad("metadata field longer than %d bytes", MaxMetadataFieldLen)
		}
		if seen != nil {
			if _, dup := seen[e.ID]; dup {
				return bad("id %s appears twice in one append", e.ID)
			}
			seen[e.ID] = struct{}{}
		}
		total += len(e.Data)
	}
	if total > MaxAppendLen {
		return fmt.Errorf("%w: append to %s carries %d bytes of data, at most %d allowed", ErrInvalidEvent, stream, total, MaxAppendLen)
	}
	return nil
}
