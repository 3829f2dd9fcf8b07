package dump

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/logbook-fleet/logbook/events"
)

// Decoder renders the payload of an event as a JSON value (usually an
// object) for the payload field of a dump line. It returns an error wrapping
// events.ErrUnknownType when it does not know e.Type; the line then carries
// the raw bytes as payload_base64 instead. Any other error also falls back to
// payload_base64 and is logged, so one bad payload never stops a dump.
//
// A Decoder is called from one goroutine at a time, in position order. It
// must not keep e.Data. Deterministic output (same bytes for the same
// payload) keeps re-dumps of a day byte-identical; the dump compacts the JSON
// it returns, so whitespace does not matter.
type Decoder func(e events.Event) ([]byte, error)

// RegistryDecoder returns a Decoder that unmarshals payloads with reg and
// renders them with protojson, keeping proto field names
// (protojson.MarshalOptions{UseProtoNames: true}). Types missing from reg are
// unknown.
func RegistryDecoder(reg *events.Registry) Decoder {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	return func(e events.Event) ([]byte, error) {
		m, err := reg.Decode(e)
		if err != nil {
			return nil, err
		}
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("render %s at position %d as JSON: %w", e.Type, e.Position, err)
		}
		return b, nil
	}
}

// rawDecoder knows no type.
func rawDecoder(e events.Event) ([]byte, error) {
	return nil, fmt.Errorf("%w %q", events.ErrUnknownType, e.Type)
}
