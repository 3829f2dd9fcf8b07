package api

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/channel"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Enrolment token lifetimes.
const (
	DefaultEnrolmentTTL = 24 * time.Hour
	MaxEnrolmentTTL     = 30 * 24 * time.Hour
)

// errNoEnrolments answers CreateEnrolmentToken on a server without an
// edge link.
var errNoEnrolments = errors.New("unit enrolment is not configured on this server (it runs without NATS)")

// unitService implements logbookv1connect.UnitServiceHandler.
type unitService struct{ s *Server }

func (u unitService) RegisterUnit(ctx context.Context, req *connect.Request[logbookv1.RegisterUnitRequest]) (*connect.Response[logbookv1.RegisterUnitResponse], error) {
	m := req.Msg
	stream, err := unitStream(m.GetUnit())
	if err != nil {
		return nil, err
	}
	if err := checkLabels(m.GetLabels()); err != nil {
		return nil, err
	}
	// Check the channel first, so a unit is not registered and then
	// refused its channel.
	var facts *logbookv1.UnitChannelFacts
	if m.GetChannel() != "" {
		if facts, err = u.s.channelFacts(ctx, m.GetChannel()); err != nil {
			return nil, err
		}
	}
	res, err := u.s.execute(ctx, stream, &logbookv1.RegisterUnit{Platform: m.GetPlatform(), Labels: m.GetLabels()})
	if err != nil {
		return nil, err
	}
	out := appended(res)
	if facts != nil {
		res, err := u.s.assignChannel(ctx, stream, facts)
		if err != nil {
			return nil, err
		}
		out = mergeAppended(out, res)
	}
	return connect.NewResponse(&logbookv1.RegisterUnitResponse{Appended: out}), nil
}

func (u unitService) ListUnits(ctx context.Context, req *connect.Request[logbookv1.ListUnitsRequest]) (*connect.Response[logbookv1.ListUnitsResponse], error) {
	m := req.Msg
	limit, err := pageLimit(m.GetLimit())
	if err != nil {
		return nil, err
	}
	if _, err := readmodel.ParseSelector(m.GetSelector()); err != nil {
		return nil, invalidf("selector: %v (want e.g. \"site=north,role!=spare,gpu\")", err)
	}
	if m.GetChannel() != "" {
		if _, err := channelStream("channel", m.GetChannel()); err != nil {
			return nil, err
		}
	}
	units, err := readmodel.ListUnits(ctx, u.s.d.Models, readmodel.UnitQuery{
		Selector:              m.GetSelector(),
		Channel:               m.GetChannel(),
		Connected:             m.Connected,
		IncludeDecommissioned: m.GetIncludeDecommissioned(),
		After:                 m.GetAfter(),
		Limit:                 limit,
	})
	if err != nil {
		return nil, u.s.modelError(readmodel.FleetName, err)
	}
	out := &logbookv1.ListUnitsResponse{Units: make([]*logbookv1.UnitSummary, len(units))}
	for i, x := range units {
		out.Units[i] = unitSummary(x)
	}
	if len(units) == limit {
		out.Next = units[len(units)-1].Name
	}
	return connect.NewResponse(out), nil
}

func (u unitService) GetUnit(ctx context.Context, req *connect.Request[logbookv1.GetUnitRequest]) (*connect.Response[logbookv1.GetUnitResponse], error) {
	st, version, err := u.s.readUnit(ctx, req.Msg.GetUnit())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.GetUnitResponse{State: st, Version: version}), nil
}

func (u unitService) SetUnitLabels(ctx context.Context, req *connect.Request[logbookv1.SetUnitLabelsRequest]) (*connect.Response[logbookv1.SetUnitLabelsResponse], error) {
	m := req.Msg
	stream, err := unitStream(m.GetUnit())
	if err != nil {
		return nil, err
	}
	if len(m.GetSet()) == 0 && len(m.GetRemove()) == 0 {
		return nil, invalidf("set or remove: give at least one label to set or remove")
	}
	if err := checkLabels(m.GetSet()); err != nil {
		return nil, err
	}
	for _, k := range m.GetRemove() {
		if err := unit.ValidateLabel(k, ""); err != nil {
			return nil, invalidf("remove: %v", err)
		}
		if _, ok := m.GetSet()[k]; ok {
			return nil, invalidf("label %q is both in set and in remove; give it in one of them", k)
		}
	}
	var out *logbookv1.Appended
	if len(m.GetSet()) > 0 {
		res, err := u.s.execute(ctx, stream, &logbookv1.SetUnitLabels{Labels: m.GetSet()})
		if err != nil {
			return nil, err
		}
		out = merge(out, res)
	}
	if len(m.GetRemove()) > 0 {
		res, err := u.s.execute(ctx, stream, &logbookv1.RemoveUnitLabels{Keys: m.GetRemove()})
		if err != nil {
			return nil, err
		}
		out = merge(out, res)
	}
	return connect.NewResponse(&logbookv1.SetUnitLabelsResponse{Appended: out}), nil
}

func (u unitService) AssignUnitChannel(ctx context.Context, req *connect.Request[logbookv1.AssignUnitChannelRequest]) (*connect.Response[logbookv1.AssignUnitChannelResponse], error) {
	stream, err := unitStream(req.Msg.GetUnit())
	if err != nil {
		return nil, err
	}
	facts, err := u.s.channelFacts(ctx, req.Msg.GetChannel())
	if err != nil {
		return nil, err
	}
	res, err := u.s.assignChannel(ctx, stream, facts)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.AssignUnitChannelResponse{Appended: res}), nil
}

// channelFacts reads what AssignUnitChannel needs to know about a channel.
func (s *Server) channelFacts(ctx context.Context, name string) (*logbookv1.UnitChannelFacts, error) {
	st, _, err := s.readChannel(ctx, "channel", name)
	if err != nil {
		return nil, err
	}
	return &logbookv1.UnitChannelFacts{Name: name, Exists: true, CurrentRelease: channel.CurrentVersion(st)}, nil
}

// assignChannel assigns the unit of stream to the channel facts describe.
// A promotion may land between reading the channel and the assignment,
// after the promotion's fan-out listed the channel's units: so it reads
// the channel again afterwards and tells the unit of a newer release.
func (s *Server) assignChannel(ctx context.Context, stream string, facts *logbookv1.UnitChannelFacts) (*logbookv1.Appended, error) {
	res, err := s.execute(ctx, stream, &logbookv1.AssignUnitChannel{Channel: facts.GetName(), Facts: facts})
	if err != nil {
		return nil, err
	}
	out := appended(res)
	again, err := s.channelFacts(ctx, facts.GetName())
	if err != nil {
		return nil, err
	}
	if again.GetCurrentRelease() != facts.GetCurrentRelease() {
		res, err := s.execute(ctx, stream, &logbookv1.ObserveUnitChannelRelease{Channel: facts.GetName(), Release: again.GetCurrentRelease()})
		if err != nil {
			return nil, err
		}
		out = merge(out, res)
	}
	return out, nil
}

func (u unitService) PinUnitRelease(ctx context.Context, req *connect.Request[logbookv1.PinUnitReleaseRequest]) (*connect.Response[logbookv1.PinUnitReleaseResponse], error) {
	stream, err := unitStream(req.Msg.GetUnit())
	if err != nil {
		return nil, err
	}
	version := req.Msg.GetRelease()
	if _, err := u.s.usableRelease(ctx, "release", version); err != nil {
		return nil, err
	}
	res, err := u.s.execute(ctx, stream, &logbookv1.PinUnitRelease{
		Release: version,
		Facts:   &logbookv1.UnitReleaseFacts{Version: version, Published: true},
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.PinUnitReleaseResponse{Appended: appended(res)}), nil
}

func (u unitService) UnpinUnitRelease(ctx context.Context, req *connect.Request[logbookv1.UnpinUnitReleaseRequest]) (*connect.Response[logbookv1.UnpinUnitReleaseResponse], error) {
	stream, err := unitStream(req.Msg.GetUnit())
	if err != nil {
		return nil, err
	}
	res, err := u.s.execute(ctx, stream, &logbookv1.UnpinUnitRelease{})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.UnpinUnitReleaseResponse{Appended: appended(res)}), nil
}

func (u unitService) DecommissionUnit(ctx context.Context, req *connect.Request[logbookv1.DecommissionUnitRequest]) (*connect.Response[logbookv1.DecommissionUnitResponse], error) {
	stream, err := unitStream(req.Msg.GetUnit())
	if err != nil {
		return nil, err
	}
	if err := checkText("reason", req.Msg.GetReason(), true, unit.MaxTextLen); err != nil {
		return nil, err
	}
	res, err := u.s.execute(ctx, stream, &logbookv1.DecommissionUnit{Reason: req.Msg.GetReason()})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.DecommissionUnitResponse{Appended: appended(res)}), nil
}

func (u unitService) CreateEnrolmentToken(ctx context.Context, req *connect.Request[logbookv1.CreateEnrolmentTokenRequest]) (*connect.Response[logbookv1.CreateEnrolmentTokenResponse], error) {
	if u.s.d.Enrolments == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errNoEnrolments)
	}
	name := req.Msg.GetUnit()
	ttl := time.Duration(req.Msg.GetTtlSeconds()) * time.Second
	switch {
	case ttl == 0:
		ttl = DefaultEnrolmentTTL
	case ttl > MaxEnrolmentTTL:
		return nil, invalidf("ttl_seconds %d: at most %d (%v)", req.Msg.GetTtlSeconds(), int64(MaxEnrolmentTTL/time.Second), MaxEnrolmentTTL)
	}
	if _, err := u.s.activeUnit(ctx, name); err != nil {
		return nil, err
	}
	now := u.s.d.Now()
	tok, err := u.s.d.Enrolments.IssueToken(ctx, name, ttl)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.CreateEnrolmentTokenResponse{
		Token:      tok,
		ExpiresAt:  timestamppb.New(now.Add(ttl)),
		NatsUrls:   slices.Clone(u.s.d.NATSURLs),
		SigningKey: slices.Clone(u.s.d.SigningKey),
	}), nil
}

// checkLabels validates labels to set with the unit aggregate's rule.
func checkLabels(labels map[string]string) error {
	if len(labels) > unit.MaxLabels {
		return invalidf("labels: %d, at most %d", len(labels), unit.MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if err := unit.ValidateLabel(k, labels[k]); err != nil {
			return invalidf("labels: %v", err)
		}
	}
	return nil
}

// merge adds what res appended to a (nil: nothing yet). Writes that
// appended nothing keep the last position that did.
func merge(a *logbookv1.Appended, res actors.Result) *logbookv1.Appended {
	return mergeAppended(a, appended(res))
}

// mergeAppended adds b, a later write to the same stream, to a.
func mergeAppended(a, b *logbookv1.Appended) *logbookv1.Appended {
	if a == nil {
		return b
	}
	if b.GetPosition() == 0 {
		b.Position = a.GetPosition()
	}
	b.Events += a.GetEvents()
	return b
}

func unitSummary(x readmodel.Unit) *logbookv1.UnitSummary {
	return &logbookv1.UnitSummary{
		Name:             x.Name,
		Platform:         x.Platform,
		Labels:           x.Labels,
		Channel:          x.Channel,
		ChannelRelease:   x.ChannelRelease,
		PinnedRelease:    x.PinnedRelease,
		DesiredRelease:   x.DesiredRelease,
		ReportedRelease:  x.ReportedRelease,
		Connected:        x.Connected,
		AgentVersion:     x.AgentVersion,
		LastSeen:         timestamp(x.LastSeen),
		RegisteredAt:     timestamp(x.RegisteredAt),
		RegisteredBy:     x.RegisteredBy,
		Decommissioned:   x.Decommissioned,
		DecommissionedAt: timestamp(x.DecommissionedAt),
		Position:         x.Position,
	}
}

// timestamp returns t as a Timestamp, nil for the zero time.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
