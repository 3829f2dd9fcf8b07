package events

import (
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// ToProto returns the wire form of e.
func ToProto(e Event) *logbookv1.Event {
	return &logbookv1.Event{
		Id:       e.ID[:],
		Stream:   e.Stream,
		Version:  e.Version,
		Position: e.Position,
		Time:     timestamppb.New(e.Time),
		Type:     e.Type,
		Data:     e.Data,
		Metadata: &logbookv1.Metadata{
			CorrelationId: e.Metadata.CorrelationID,
			CausationId:   e.Metadata.CausationID,
			Principal:     e.Metadata.Principal,
		},
		PrevHash: e.PrevHash[:],
		Hash:     e.Hash[:],
	}
}

// FromProto converts a wire event, checking the sizes of its fixed-length
// fields. It does not check the hash; Verify does.
func FromProto(p *logbookv1.Event) (Event, error) {
	id, err := uuid.FromBytes(p.GetId())
	if err != nil {
		return Event{}, fmt.Errorf("%w: id: %v", ErrInvalidEvent, err)
	}
	e := Event{
		ID:       id,
		Stream:   p.GetStream(),
		Version:  p.GetVersion(),
		Position: p.GetPosition(),
		Type:     p.GetType(),
		Data:     p.GetData(),
		Metadata: Metadata{
			CorrelationID: p.GetMetadata().GetCorrelationId(),
			CausationID:   p.GetMetadata().GetCausationId(),
			Principal:     p.GetMetadata().GetPrincipal(),
		},
	}
	if p.Time != nil {
		if err := p.Time.CheckValid(); err != nil {
			return Event{}, fmt.Errorf("%w: time: %v", ErrInvalidEvent, err)
		}
		e.Time = p.Time.AsTime()
	}
	for _, h := range []struct {
		dst  *Hash
		src  []byte
		name string
	}{{&e.PrevHash, p.GetPrevHash(), "prev_hash"}, {&e.Hash, p.GetHash(), "hash"}} {
		switch len(h.src) {
		case 0:
		case len(h.dst):
			copy(h.dst[:], h.src)
		default:
			return Event{}, fmt.Errorf("%w: %s is %d bytes, want %d", ErrInvalidEvent, h.name, len(h.src), len(h.dst))
		}
	}
	return e, nil
}
