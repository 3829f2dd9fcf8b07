package events

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Registry maps payload type names (protobuf full names) to Go types, so a
// reader can turn an Event's Data back into the message it was made from.
// The zero value is empty and ready to use; it is safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	types map[string]protoreflect.MessageType
}

// Register adds the types of the given messages. Registering a type twice is
// harmless.
func (r *Registry) Register(msgs ...proto.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.types == nil {
		r.types = make(map[string]protoreflect.MessageType)
	}
	for _, m := range msgs {
		mt := m.ProtoReflect().Type()
		r.types[string(mt.Descriptor().FullName())] = mt
	}
}

// Lookup returns the Go type registered for a payload type name.
func (r *Registry) Lookup(typ string) (protoreflect.MessageType, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	mt, ok := r.types[typ]
	return mt, ok
}

// Types returns the registered type names.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	return names
}

// Decode unmarshals e.Data into a new message of e.Type. It returns an error
// wrapping ErrUnknownType when the type is not registered, and a decoding
// error naming the event's position when the bytes are not a valid message.
func (r *Registry) Decode(e Event) (proto.Message, error) {
	mt, ok := r.Lookup(e.Type)
	if !ok {
		return nil, fmt.Errorf("%w %q (stream %s, position %d)", ErrUnknownType, e.Type, e.Stream, e.Position)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(e.Data, m); err != nil {
		return nil, fmt.Errorf("decode %s at position %d (stream %s): %w", e.Type, e.Position, e.Stream, err)
	}
	return m, nil
}

// NewEvent returns an event with a new id carrying msg as its payload.
func NewEvent(msg proto.Message, md Metadata) (Event, error) {
	data, err := proto.Marshal(msg)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	return Event{
		ID:       NewID(),
		Type:     string(msg.ProtoReflect().Descriptor().FullName()),
		Data:     data,
		Metadata: md,
	}, nil
}

// stampTime gives each event without a time the same current time, in UTC.
func stampTime(evs []Event, now time.Time) {
	for i := range evs {
		if evs[i].Time.IsZero() {
			evs[i].Time = now
		} else {
			evs[i].Time = evs[i].Time.UTC()
		}
	}
}

// PrepareAppend validates an Append's arguments (see ValidateAppend) and
// returns a copy of evs with Stream set and a zero Time replaced by now.
// Stores call it before taking any lock so the caller's slice is never
// modified.
func PrepareAppend(stream string, evs []Event, now time.Time) ([]Event, error) {
	if err := ValidateAppend(stream, evs); err != nil {
		return nil, err
	}
	out := make([]Event, len(evs))
	copy(out, evs)
	prepare(stream, out, now)
	return out, nil
}

// PrepareOwnedAppend is PrepareAppend for events the caller hands over
// (decoded for this append alone): it sets Stream and stamps the time in
// evs itself, sparing the copy.
func PrepareOwnedAppend(stream string, evs []Event, now time.Time) error {
	if err := ValidateAppend(stream, evs); err != nil {
		return err
	}
	prepare(stream, evs, now)
	return nil
}

func prepare(stream string, evs []Event, now time.Time) {
	for i := range evs {
		evs[i].Stream = stream
	}
	stampTime(evs, now.UTC())
}
