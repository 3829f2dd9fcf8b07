package raft

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// appendCall is one Append call as it travels: decoded, or as the wire
// message it came in.
type appendCall struct {
	stream string
	expect events.Expect
	events []events.Event
}

// encodeExpect returns the wire form of e.
func encodeExpect(e events.Expect) (logbookv1.ExpectKind, uint64) {
	if v, ok := e.Version(); ok {
		if v == 0 {
			return logbookv1.ExpectKind_EXPECT_KIND_NO_STREAM, 0
		}
		return logbookv1.ExpectKind_EXPECT_KIND_EXACTLY, v
	}
	if e.Allows(0) {
		return logbookv1.ExpectKind_EXPECT_KIND_ANY, 0
	}
	return logbookv1.ExpectKind_EXPECT_KIND_EXISTS, 0
}

func decodeExpect(kind logbookv1.ExpectKind, v uint64) (events.Expect, error) {
	switch kind {
	case logbookv1.ExpectKind_EXPECT_KIND_ANY:
		return events.Any, nil
	case logbookv1.ExpectKind_EXPECT_KIND_NO_STREAM:
		return events.NoStream, nil
	case logbookv1.ExpectKind_EXPECT_KIND_EXISTS:
		return events.Exists, nil
	case logbookv1.ExpectKind_EXPECT_KIND_EXACTLY:
		if v == 0 {
			return events.Expect{}, fmt.Errorf("%w: expect exactly version 0", events.ErrInvalidEvent)
		}
		return events.Exactly(v), nil
	}
	return events.Expect{}, fmt.Errorf("%w: unknown expect kind %d", events.ErrInvalidEvent, kind)
}

// encodeAppend returns the wire form of an append whose events are
// prepared (stream set, time stamped).
func encodeAppend(stream string, expect events.Expect, evs []events.Event) *logbookv1.ClusterAppend {
	kind, v := encodeExpect(expect)
	out := &logbookv1.ClusterAppend{Stream: stream, ExpectKind: kind, ExpectVersion: v, Events: make([]*logbookv1.ClusterEvent, len(evs))}
	for i := range evs {
		out.Events[i] = encodeEvent(&evs[i], false)
	}
	return out
}

// encodeEvent returns the wire form of e: what the appender chose, and
// with placed also where the log put it.
func encodeEvent(e *events.Event, placed bool) *logbookv1.ClusterEvent {
	p := &logbookv1.ClusterEvent{
		Id:            e.ID[:],
		TimeUnixNano:  e.Time.UnixNano(),
		Type:          []byte(e.Type),
		Data:          e.Data,
		CorrelationId: []byte(e.Metadata.CorrelationID),
		CausationId:   []byte(e.Metadata.CausationID),
		Principal:     []byte(e.Metadata.Principal),
	}
	if placed {
		p.Stream = []byte(e.Stream)
		p.Version, p.Position = e.Version, e.Position
		p.PrevHash, p.Hash = e.PrevHash[:], e.Hash[:]
	}
	return p
}

// decodeEvent converts a wire event back; with placed, it also takes
// stream, version, position and hashes, checking their sizes.
func decodeEvent(p *logbookv1.ClusterEvent, placed bool) (events.Event, error) {
	id, err := uuid.FromBytes(p.GetId())
	if err != nil {
		return events.Event{}, fmt.Errorf("%w: id: %v", events.ErrInvalidEvent, err)
	}
	e := events.Event{
		ID:   id,
		Time: time.Unix(0, p.GetTimeUnixNano()).UTC(),
		Type: string(p.GetType()),
		Data: p.GetData(),
		Metadata: events.Metadata{
			CorrelationID: string(p.GetCorrelationId()),
			CausationID:   string(p.GetCausationId()),
			Principal:     string(p.GetPrincipal()),
		},
	}
	if !placed {
		return e, nil
	}
	e.Stream, e.Version, e.Position = string(p.GetStream()), p.GetVersion(), p.GetPosition()
	for _, h := range []struct {
		dst  *events.Hash
		src  []byte
		name string
	}{{&e.PrevHash, p.GetPrevHash(), "prev_hash"}, {&e.Hash, p.GetHash(), "hash"}} {
		if len(h.src) != len(h.dst) {
			return events.Event{}, fmt.Errorf("%w: %s is %d bytes, want %d", events.ErrInvalidEvent, h.name, len(h.src), len(h.dst))
		}
		copy(h.dst[:], h.src)
	}
	return e, nil
}

// decodeAppend converts a wire append back. The events' Stream is set to
// the append's stream; times are always set (replicas never stamp events
// with their own clocks).
func decodeAppend(p *logbookv1.ClusterAppend) (appendCall, error) {
	expect, err := decodeExpect(p.GetExpectKind(), p.GetExpectVersion())
	if err != nil {
		return appendCall{}, err
	}
	evs := make([]events.Event, len(p.GetEvents()))
	for i, pe := range p.GetEvents() {
		e, err := decodeEvent(pe, false)
		if err != nil {
			return appendCall{}, fmt.Errorf("event %d of append to %s: %w", i, p.GetStream(), err)
		}
		e.Stream = p.GetStream()
		evs[i] = e
	}
	return appendCall{stream: p.GetStream(), expect: expect, events: evs}, nil
}

// appendCommandField appends one encoded ClusterAppend to buf as a field of
// a RaftCommand, so that the batcher builds a command by concatenating
// appends the callers encoded in parallel.
func appendCommandField(buf, encodedAppend []byte) []byte {
	buf = protowire.AppendTag(buf, 1, protowire.BytesType)
	return protowire.AppendBytes(buf, encodedAppend)
}

func resultToProto(r events.AppendResult) *logbookv1.AppendResult {
	return &logbookv1.AppendResult{
		FirstVersion: r.FirstVersion, LastVersion: r.LastVersion,
		FirstPosition: r.FirstPosition, LastPosition: r.LastPosition,
		Hash: r.Hash[:],
	}
}

func resultFromProto(p *logbookv1.AppendResult) (events.AppendResult, error) {
	r := events.AppendResult{
		FirstVersion: p.GetFirstVersion(), LastVersion: p.GetLastVersion(),
		FirstPosition: p.GetFirstPosition(), LastPosition: p.GetLastPosition(),
	}
	if h := p.GetHash(); len(h) != len(r.Hash) {
		return events.AppendResult{}, fmt.Errorf("append result hash is %d bytes, want %d", len(h), len(r.Hash))
	}
	copy(r.Hash[:], p.GetHash())
	return r, nil
}

// errorToProto translates err for the wire; leader is the leader address
// this node knows, for ErrNotLeader.
func errorToProto(err error, leader string) *logbookv1.ClusterError {
	if err == nil {
		return nil
	}
	out := &logbookv1.ClusterError{Code: logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_INTERNAL, Message: err.Error()}
	var wev *events.WrongExpectedVersionError
	switch {
	case errors.As(err, &wev):
		out.Code = logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_WRONG_EXPECTED_VERSION
		out.ActualVersion = wev.Actual
	case errors.Is(err, events.ErrDuplicateEventID):
		out.Code = logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_DUPLICATE_EVENT_ID
	case errors.Is(err, events.ErrInvalidStreamName):
		out.Code = logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_INVALID_STREAM_NAME
	case errors.Is(err, events.ErrInvalidEvent):
		out.Code = logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_INVALID_EVENT
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
		out.Code = logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_NOT_LEADER
		out.LeaderAddress = leader
	case errors.Is(err, ErrUnknownOutcome):
		out.Code = logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_UNKNOWN_OUTCOME
	case errors.Is(err, ErrClosed), errors.Is(err, events.ErrClosed):
		out.Code = logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_CLOSED
	}
	return out
}

// errorFromProto translates a peer's error back, for a call to stream (when
// it was an append) with expect.
func errorFromProto(p *logbookv1.ClusterError, call *appendCall) error {
	msg := p.GetMessage()
	switch p.GetCode() {
	case logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_WRONG_EXPECTED_VERSION:
		if call != nil {
			return &events.WrongExpectedVersionError{Stream: call.stream, Expected: call.expect, Actual: p.GetActualVersion()}
		}
		return fmt.Errorf("%w: %s", events.ErrWrongExpectedVersion, msg)
	case logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_DUPLICATE_EVENT_ID:
		return wrapRemote(events.ErrDuplicateEventID, msg)
	case logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_INVALID_EVENT:
		return wrapRemote(events.ErrInvalidEvent, msg)
	case logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_INVALID_STREAM_NAME:
		return wrapRemote(events.ErrInvalidStreamName, msg)
	case logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_NOT_LEADER:
		return &notLeaderError{leader: p.GetLeaderAddress(), msg: msg}
	case logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_UNKNOWN_OUTCOME:
		return wrapRemote(ErrUnknownOutcome, msg)
	case logbookv1.ClusterErrorCode_CLUSTER_ERROR_CODE_CLOSED:
		return wrapRemote(ErrClosed, msg)
	}
	return errors.New(msg)
}

// remoteSentinel is a peer's error message that unwraps to the sentinel it
// was translated from.
type remoteSentinel struct {
	sentinel error
	msg      string
}

func (e *remoteSentinel) Error() string { return e.msg }
func (e *remoteSentinel) Unwrap() error { return e.sentinel }

func wrapRemote(sentinel error, msg string) error { return &remoteSentinel{sentinel, msg} }

// notLeaderError is ErrNotLeader with the address of the leader the
// answering node knows, if any.
type notLeaderError struct {
	leader string
	msg    string
}

func (e *notLeaderError) Error() string { return e.msg }
func (e *notLeaderError) Unwrap() error { return ErrNotLeader }
