package raft

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// The hot path of a replicated append, written against the wire format
// of proto/logbook/v1/cluster.proto directly: each appender encodes its
// ClusterAppend (appendWireAppend), and every replica decodes each command
// entry (decodeCommand). The generated code did the same work through
// reflection, with a message allocated per event and every byte field
// copied; on the 3-node benchmark that was a tenth of the CPU.
//
// Every replica must decode an entry alike, including replicas still on
// a version that used proto.Unmarshal, so decodeCommand keeps its
// semantics exactly: unknown fields and known fields of another wire type
// are skipped, the last value of a scalar field wins, stream must be valid
// UTF-8 (a proto3 string), and an enum keeps the low 32 bits of its
// varint. FuzzCommandWire holds the two decoders to the same answers.

// Field numbers, from cluster.proto.
const (
	fieldCommandAppends = 1

	fieldAppendStream        = 1
	fieldAppendExpectKind    = 2
	fieldAppendExpectVersion = 3
	fieldAppendEvents        = 4

	fieldEventID            = 1
	fieldEventTime          = 2
	fieldEventType          = 3
	fieldEventData          = 4
	fieldEventCorrelationID = 5
	fieldEventCausationID   = 6
	fieldEventPrincipal     = 7
)

// appendWireAppend appends the encoded ClusterAppend of prepared events
// (stream set, time stamped) to buf: the bytes proto.Marshal gives for
// encodeAppend's message. The stream must have passed
// events.ValidateStream, as PrepareAppend checks: proto.Marshal refused a
// stream that is not UTF-8, and every replica refuses an entry holding one.
func appendWireAppend(buf []byte, stream string, expect events.Expect, evs []events.Event) []byte {
	kind, v := encodeExpect(expect)
	size := 1 + protowire.SizeBytes(len(stream)) + 2*(1+protowire.SizeVarint(v))
	for i := range evs {
		size += 1 + protowire.SizeBytes(wireEventSize(&evs[i]))
	}
	buf = slices.Grow(buf, size)
	if stream != "" {
		buf = protowire.AppendTag(buf, fieldAppendStream, protowire.BytesType)
		buf = protowire.AppendString(buf, stream)
	}
	if kind != 0 {
		buf = protowire.AppendTag(buf, fieldAppendExpectKind, protowire.VarintType)
		buf = protowire.AppendVarint(buf, uint64(kind))
	}
	if v != 0 {
		buf = protowire.AppendTag(buf, fieldAppendExpectVersion, protowire.VarintType)
		buf = protowire.AppendVarint(buf, v)
	}
	for i := range evs {
		e := &evs[i]
		buf = protowire.AppendTag(buf, fieldAppendEvents, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(wireEventSize(e)))
		buf = protowire.AppendTag(buf, fieldEventID, protowire.BytesType)
		buf = protowire.AppendBytes(buf, e.ID[:])
		if t := e.Time.UnixNano(); t != 0 {
			buf = protowire.AppendTag(buf, fieldEventTime, protowire.Fixed64Type)
			buf = protowire.AppendFixed64(buf, uint64(t))
		}
		buf = appendWireString(buf, fieldEventType, e.Type)
		if len(e.Data) > 0 {
			buf = protowire.AppendTag(buf, fieldEventData, protowire.BytesType)
			buf = protowire.AppendBytes(buf, e.Data)
		}
		buf = appendWireString(buf, fieldEventCorrelationID, e.Metadata.CorrelationID)
		buf = appendWireString(buf, fieldEventCausationID, e.Metadata.CausationID)
		buf = appendWireString(buf, fieldEventPrincipal, e.Metadata.Principal)
	}
	return buf
}

// wireEventSize is the size of e's encoded ClusterEvent, as
// appendWireAppend writes it.
func wireEventSize(e *events.Event) int {
	n := 1 + protowire.SizeBytes(len(e.ID))
	if e.Time.UnixNano() != 0 {
		n += 1 + 8
	}
	for _, s := range [...]int{len(e.Type), len(e.Data), len(e.Metadata.CorrelationID), len(e.Metadata.CausationID), len(e.Metadata.Principal)} {
		if s > 0 {
			n += 1 + protowire.SizeBytes(s)
		}
	}
	return n
}

func appendWireString(buf []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return buf
	}
	buf = protowire.AppendTag(buf, num, protowire.BytesType)
	return protowire.AppendString(buf, s)
}

// errWire is how a malformed command entry fails: the whole entry, as
// proto.Unmarshal failed it.
var errWire = errors.New("malformed protobuf")

// decodedAppend is one append of a command entry: the decoded call, or
// the error decodeAppend gives for the append's content.
type decodedAppend struct {
	call appendCall
	err  error
}

// decodeCommand decodes a RaftCommand entry into its appends, in order.
// An error means the entry's bytes are not a RaftCommand, and nothing of
// it applies.
//
// The events' Data alias data, which must not change afterwards.
func decodeCommand(data []byte) ([]decodedAppend, error) {
	// A first pass checks the entry's framing and counts its appends, so
	// the result is allocated once.
	n := 0
	for rest := data; len(rest) > 0; {
		num, typ, k := consumeTag(rest)
		if k < 0 {
			return nil, wireError(k)
		}
		rest = rest[k:]
		if k = protowire.ConsumeFieldValue(num, typ, rest); k < 0 {
			return nil, wireError(k)
		}
		if num == fieldCommandAppends && typ == protowire.BytesType {
			n++
		}
		rest = rest[k:]
	}
	out := make([]decodedAppend, 0, n)
	for v := range bytesFields(data, fieldCommandAppends) {
		call, err := decodeWireAppend(v)
		if errors.Is(err, errWire) {
			return nil, err
		}
		out = append(out, decodedAppend{call, err})
	}
	return out, nil
}

// bytesFields yields the values of the length-delimited fields numbered
// num in msg, whose framing has been checked.
func bytesFields(msg []byte, num protowire.Number) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(msg) > 0 {
			n, typ, k := consumeTag(msg)
			msg = msg[k:]
			k = protowire.ConsumeFieldValue(n, typ, msg)
			if n == num && typ == protowire.BytesType {
				if v, _ := protowire.ConsumeBytes(msg); !yield(v) {
					return
				}
			}
			msg = msg[k:]
		}
	}
}

// consumeTag is protowire.ConsumeTag, also refusing field numbers above
// the greatest valid one, as proto.Unmarshal does.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}

func wireError(n int) error {
	return fmt.Errorf("%w: %w", errWire, protowire.ParseError(n))
}

// decodeWireAppend decodes one ClusterAppend. A malformed message fails
// with errWire; a well-formed one whose content is not an append (an
// unknown expect kind, a bad id) with decodeAppend's error.
func decodeWireAppend(data []byte) (appendCall, error) {
	var (
		stream  string
		kind    int32
		version uint64
		nevents int
	)
	for rest := data; len(rest) > 0; {
		num, typ, n := consumeTag(rest)
		if n < 0 {
			return appendCall{}, wireError(n)
		}
		rest = rest[n:]
		switch {
		case num == fieldAppendStream && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(rest)
			if n < 0 {
				return appendCall{}, wireError(n)
			}
			if !utf8.Valid(v) {
				return appendCall{}, fmt.Errorf("%w: stream is not valid UTF-8", errWire)
			}
			stream, rest = string(v), rest[n:]
		case num == fieldAppendExpectKind && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(rest)
			if n < 0 {
				return appendCall{}, wireError(n)
			}
			kind, rest = int32(v), rest[n:]
		case num == fieldAppendExpectVersion && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(rest)
			if n < 0 {
				return appendCall{}, wireError(n)
			}
			version, rest = v, rest[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, rest)
			if n < 0 {
				return appendCall{}, wireError(n)
			}
			if num == fieldAppendEvents && typ == protowire.BytesType {
				nevents++
			}
			rest = rest[n:]
		}
	}
	// The events, on a second pass. Every one must be well formed before
	// a content error counts, as proto.Unmarshal fails the entry first.
	evs := make([]events.Event, 0, nevents)
	bad, badErr := -1, error(nil)
	for v := range bytesFields(data, fieldAppendEvents) {
		e, err := decodeWireEvent(v)
		if errors.Is(err, errWire) {
			return appendCall{}, err
		}
		if err != nil && bad < 0 {
			bad, badErr = len(evs), err
		}
		e.Stream = stream
		evs = append(evs, e)
	}
	expect, err := decodeExpect(logbookv1.ExpectKind(kind), version)
	if err != nil {
		return appendCall{}, err
	}
	if bad >= 0 {
		return appendCall{}, fmt.Errorf("event %d of append to %s: %w", bad, stream, badErr)
	}
	return appendCall{stream: stream, expect: expect, events: evs}, nil
}

// decodeWireEvent decodes one ClusterEvent as an appender sent it (the
// placement fields, which only snapshots carry, are skipped as
// decodeEvent without placed ignores them).
func decodeWireEvent(data []byte) (events.Event, error) {
	var (
		e        events.Event
		id       []byte
		nanos    int64
		typ, cor []byte
		cau, pri []byte
	)
	for len(data) > 0 {
		num, wt, n := consumeTag(data)
		if n < 0 {
			return events.Event{}, wireError(n)
		}
		data = data[n:]
		var dst *[]byte
		switch {
		case num == fieldEventTime && wt == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(data)
			if n < 0 {
				return events.Event{}, wireError(n)
			}
			nanos, data = int64(v), data[n:]
			continue
		case wt != protowire.BytesType:
		case num == fieldEventID:
			dst = &id
		case num == fieldEventType:
			dst = &typ
		case num == fieldEventData:
			dst = &e.Data
		case num == fieldEventCorrelationID:
			dst = &cor
		case num == fieldEventCausationID:
			dst = &cau
		case num == fieldEventPrincipal:
			dst = &pri
		}
		if dst == nil {
			n := protowire.ConsumeFieldValue(num, wt, data)
			if n < 0 {
				return events.Event{}, wireError(n)
			}
			data = data[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(data)
		if n < 0 {
			return events.Event{}, wireError(n)
		}
		*dst, data = v, data[n:]
	}
	var err error
	if e.ID, err = uuid.FromBytes(id); err != nil {
		return events.Event{}, fmt.Errorf("%w: id: %v", events.ErrInvalidEvent, err)
	}
	if len(e.Data) == 0 {
		e.Data = nil
	}
	e.Time = time.Unix(0, nanos).UTC()
	e.Type = string(typ)
	e.Metadata = events.Metadata{CorrelationID: string(cor), CausationID: string(cau), Principal: string(pri)}
	return e, nil
}
