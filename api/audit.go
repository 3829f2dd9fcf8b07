package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// auditService answers the auditor: who did what (the audit timeline read
// model) and what an entity believed at a point of its history (a replay
// of its stream).
type auditService struct{ s *Server }

// stateJSON renders entity states, and the values of FieldChange, with
// the field names of the .proto files ("registered_at"), as the paths of
// FieldChange use them.
var stateJSON = protojson.MarshalOptions{UseProtoNames: true}

// maxDiffEvents bounds the audit records a Diff returns.
const maxDiffEvents = 10_000

// Timeline returns the audit timeline: the events of the log but readings,
// oldest first, selected by stream, principal and time (since <= time <
// until), after the position after. When the page is full, next is the
// position to pass as after for the next page; 0 means there is no more.
// It answers Unavailable until the audit read model has caught up.
func (a auditService) Timeline(ctx context.Context, req *connect.Request[logbookv1.AuditTimelineRequest]) (*connect.Response[logbookv1.AuditTimelineResponse], error) {
	m := req.Msg
	q := readmodel.AuditQuery{Stream: m.GetStream(), Principal: m.GetPrincipal(), After: m.GetAfter(), Oldest: true}
	if q.Stream != "" {
		if err := checkStream("stream", q.Stream); err != nil {
			return nil, err
		}
	}
	var err error
	if q.Since, err = optionalTime("since", m.GetSince()); err != nil {
		return nil, err
	}
	if q.Until, err = optionalTime("until", m.GetUntil()); err != nil {
		return nil, err
	}
	if q.Limit, err = pageLimit(m.GetLimit()); err != nil {
		return nil, err
	}
	entries, err := readmodel.AuditTimeline(ctx, a.s.d.Models, q)
	if err != nil {
		return nil, err
	}
	out := &logbookv1.AuditTimelineResponse{Entries: make([]*logbookv1.AuditRecord, len(entries))}
	for i, en := range entries {
		out.Entries[i] = &logbookv1.AuditRecord{
			Position: en.Position, Time: timestamppb.New(en.Time), Stream: en.Stream, Version: en.Version,
			Type: en.Type, Principal: en.Principal, CorrelationId: en.CorrelationID, CausationId: en.CausationID,
			EventId: en.EventID,
		}
	}
	if len(entries) == q.Limit {
		out.Next = entries[len(entries)-1].Position
	}
	return connect.NewResponse(out), nil
}

// StateAt rebuilds the state of the entity of stream as it was at a point
// of its history, by replaying its stream with its kind's Evolve: after
// its last event at or before a log position, or up to (not including)
// its first event recorded after a time, or now. A point before the
// stream's first event is NotFound: the entity did not exist yet. The
// state is protobuf JSON with the .proto field names.
func (a auditService) StateAt(ctx context.Context, req *connect.Request[logbookv1.StateAtRequest]) (*connect.Response[logbookv1.StateAtResponse], error) {
	m := req.Msg
	keep, at, err := a.point("at", m.GetStream(), m.GetAt())
	if err != nil {
		return nil, err
	}
	r, err := a.replay(ctx, m.GetStream(), keep)
	if err != nil {
		return nil, err
	}
	if r.Last.Version == 0 {
		return nil, notFoundf("stream %s has no events at or before %s: its first event is at position %d, %s",
			m.GetStream(), at, r.Next.Position, r.Next.Time.Format(time.RFC3339Nano))
	}
	st, err := stateAt(r)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(st), nil
}

// Diff rebuilds the entity of stream at two points of its history (see
// StateAt; to unset is now) and returns both states, the fields that
// changed between them and the audit records of the events in between
// (at most 10,000, oldest first). A from point before the stream's first
// event is the entity's initial state, at version 0, so that a diff from
// the beginning lists everything the entity became.
func (a auditService) Diff(ctx context.Context, req *connect.Request[logbookv1.DiffRequest]) (*connect.Response[logbookv1.DiffResponse], error) {
	m := req.Msg
	if m.GetFrom().GetAt() == nil {
		return nil, invalidf("from: required, a time or a log position")
	}
	keepFrom, _, err := a.point("from", m.GetStream(), m.GetFrom())
	if err != nil {
		return nil, err
	}
	keepTo, _, err := a.point("to", m.GetStream(), m.GetTo())
	if err != nil {
		return nil, err
	}
	from, err := a.replay(ctx, m.GetStream(), keepFrom)
	if err != nil {
		return nil, err
	}
	to, err := a.replay(ctx, m.GetStream(), keepTo)
	if err != nil {
		return nil, err
	}
	if from.Last.Version > to.Last.Version {
		return nil, invalidf("from (version %d, position %d) is after to (version %d, position %d)",
			from.Last.Version, from.Last.Position, to.Last.Version, to.Last.Position)
	}
	out := &logbookv1.DiffResponse{Changes: diffMessages(from.State, to.State)}
	if out.From, err = stateAt(from); err != nil {
		return nil, err
	}
	if out.To, err = stateAt(to); err != nil {
		return nil, err
	}
	if from.Last.Version < to.Last.Version {
		for ev, err := range a.s.d.Store.ReadStream(ctx, m.GetStream(), from.Last.Version+1) {
			if err != nil {
				return nil, fmt.Errorf("read stream %s: %w", m.GetStream(), err)
			}
			if ev.Version > to.Last.Version || len(out.Events) == maxDiffEvents {
				break
			}
			out.Events = append(out.Events, auditRecord(ev))
		}
	}
	return connect.NewResponse(out), nil
}

// point validates stream and the point p of field and returns the filter
// that keeps the stream's events up to it, and a description of it.
func (a auditService) point(field, stream string, p *logbookv1.AuditPoint) (keep func(events.Event) bool, desc string, err error) {
	if err := checkStream("stream", stream); err != nil {
		return nil, "", err
	}
	known := a.s.d.Host.Categories()
	if c := events.Category(stream); !slices.Contains(known, c) {
		return nil, "", invalidf("stream %s: no entity kind has category %q; known categories: %s", stream, c, strings.Join(known, ", "))
	}
	switch at := p.GetAt().(type) {
	case nil:
		return nil, "now", nil
	case *logbookv1.AuditPoint_Position:
		pos := at.Position
		return func(ev events.Event) bool { return ev.Position <= pos }, fmt.Sprintf("position %d", pos), nil
	case *logbookv1.AuditPoint_Time:
		if err := at.Time.CheckValid(); err != nil {
			return nil, "", invalidf("%s.time: %v", field, err)
		}
		t := at.Time.AsTime()
		return func(ev events.Event) bool { return !ev.Time.After(t) }, t.Format(time.RFC3339Nano), nil
	default:
		return nil, "", invalidf("%s: unknown kind of point %T", field, at)
	}
}

// replay rebuilds stream's entity up to keep, mapping a stream without
// events to NotFound.
func (a auditService) replay(ctx context.Context, stream string, keep func(events.Event) bool) (actors.Replayed, error) {
	r, err := a.s.d.Host.Replay(ctx, stream, keep)
	if errors.Is(err, events.ErrStreamNotFound) {
		return r, notFoundf("stream %s has no events", stream)
	}
	return r, err
}

// stateAt describes a replayed state.
func stateAt(r actors.Replayed) (*logbookv1.StateAtResponse, error) {
	js, err := stateJSON.Marshal(r.State)
	if err != nil {
		return nil, fmt.Errorf("render the state of %s as JSON: %w", r.Stream, err)
	}
	out := &logbookv1.StateAtResponse{
		Stream: r.Stream, Version: r.Last.Version, Position: r.Last.Position,
		StateJson: string(js), StateType: string(proto.MessageName(r.State)),
	}
	if r.Last.Version > 0 {
		out.Time = timestamppb.New(r.Last.Time)
	}
	return out, nil
}

// auditRecord is ev's entry in an audit.
func auditRecord(ev events.Event) *logbookv1.AuditRecord {
	return &logbookv1.AuditRecord{
		Position: ev.Position, Time: timestamppb.New(ev.Time), Stream: ev.Stream, Version: ev.Version,
		Type: ev.Type, Principal: ev.Metadata.Principal, CorrelationId: ev.Metadata.CorrelationID,
		CausationId: ev.Metadata.CausationID, EventId: ev.ID.String(),
	}
}

// optionalTime converts an optional timestamp of field.
func optionalTime(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, invalidf("%s: %v", field, err)
	}
	return ts.AsTime(), nil
}
