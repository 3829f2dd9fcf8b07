package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/actors/channel"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// channelService implements logbookv1connect.ChannelServiceHandler.
type channelService struct{ s *Server }

func (c channelService) CreateChannel(ctx context.Context, req *connect.Request[logbookv1.CreateChannelRequest]) (*connect.Response[logbookv1.CreateChannelResponse], error) {
	name := req.Msg.GetChannel()
	stream, err := channelStream("channel", name)
	if err != nil {
		return nil, err
	}
	if err := checkText("description", req.Msg.GetDescription(), false, channel.MaxTextLen); err != nil {
		return nil, err
	}
	res, err := c.s.execute(ctx, stream, &logbookv1.CreateChannel{Name: name, Description: req.Msg.GetDescription()})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.CreateChannelResponse{Appended: appended(res)}), nil
}

func (c channelService) ListChannels(ctx context.Context, req *connect.Request[logbookv1.ListChannelsRequest]) (*connect.Response[logbookv1.ListChannelsResponse], error) {
	chs, err := readmodel.ListChannels(ctx, c.s.d.Models)
	if err != nil {
		return nil, c.s.modelError(readmodel.ReleasesName, err)
	}
	out := &logbookv1.ListChannelsResponse{Channels: make([]*logbookv1.ChannelSummary, len(chs))}
	for i, x := range chs {
		out.Channels[i] = &logbookv1.ChannelSummary{
			Name:           x.Name,
			Description:    x.Description,
			CreatedAt:      timestamp(x.CreatedAt),
			CreatedBy:      x.CreatedBy,
			CurrentRelease: x.CurrentRelease,
			Flags:          x.Flags,
			UpdatedAt:      timestamp(x.UpdatedAt),
			Position:       x.Position,
		}
	}
	return connect.NewResponse(out), nil
}

func (c channelService) GetChannel(ctx context.Context, req *connect.Request[logbookv1.GetChannelRequest]) (*connect.Response[logbookv1.GetChannelResponse], error) {
	st, version, err := c.s.readChannel(ctx, "channel", req.Msg.GetChannel())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.GetChannelResponse{State: st, Version: version}), nil
}

func (c channelService) PromoteRelease(ctx context.Context, req *connect.Request[logbookv1.PromoteReleaseRequest]) (*connect.Response[logbookv1.PromoteReleaseResponse], error) {
	m := req.Msg
	stream, err := channelStream("channel", m.GetChannel())
	if err != nil {
		return nil, err
	}
	if err := checkText("reason", m.GetReason(), true, channel.MaxTextLen); err != nil {
		return nil, invalidf("%v (why this release goes out: it is kept in the channel's history)", err)
	}
	if _, _, err := c.s.readChannel(ctx, "channel", m.GetChannel()); err != nil {
		return nil, err
	}
	if _, err := c.s.usableRelease(ctx, "release", m.GetRelease()); err != nil {
		return nil, err
	}
	res, err := c.s.execute(ctx, stream, &logbookv1.PromoteRelease{
		Channel: m.GetChannel(),
		Version: m.GetRelease(),
		Reason:  m.GetReason(),
		Release: &logbookv1.ChannelReleaseFacts{Version: m.GetRelease(), Published: true},
	})
	if err != nil {
		return nil, err
	}
	// Tell the units even when the release was current already: a
	// repeated request completes a fan-out that failed half-way.
	n, err := c.s.notifyChannel(ctx, m.GetChannel(), m.GetRelease(), appended(res).GetPosition())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.PromoteReleaseResponse{Appended: appended(res), Units: uint32(n)}), nil
}

func (c channelService) RollbackChannel(ctx context.Context, req *connect.Request[logbookv1.RollbackChannelRequest]) (*connect.Response[logbookv1.RollbackChannelResponse], error) {
	m := req.Msg
	stream, err := channelStream("channel", m.GetChannel())
	if err != nil {
		return nil, err
	}
	if err := checkText("reason", m.GetReason(), true, channel.MaxTextLen); err != nil {
		return nil, invalidf("%v (why the channel goes back: it is kept in the channel's history)", err)
	}
	st, _, err := c.s.readChannel(ctx, "channel", m.GetChannel())
	if err != nil {
		return nil, err
	}
	target, ok := channel.RollbackTarget(st)
	if !ok {
		return nil, preconditionf("channel %s has no earlier release to roll back to (current: %q); promote one instead", m.GetChannel(), channel.CurrentVersion(st))
	}
	rel, _, err := c.s.readRelease(ctx, "release", target)
	if err != nil {
		return nil, err
	}
	res, err := c.s.execute(ctx, stream, &logbookv1.RollbackChannel{
		Channel: m.GetChannel(),
		Reason:  m.GetReason(),
		Target: &logbookv1.ChannelReleaseFacts{
			Version:   target,
			Published: true,
			Yanked:    rel.GetStatus() == logbookv1.ReleaseStatus_RELEASE_STATUS_YANKED,
		},
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.s.notifyChannel(ctx, m.GetChannel(), target, appended(res).GetPosition()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.RollbackChannelResponse{Appended: appended(res), Release: target}), nil
}

func (c channelService) SetChannelFlag(ctx context.Context, req *connect.Request[logbookv1.SetChannelFlagRequest]) (*connect.Response[logbookv1.SetChannelFlagResponse], error) {
	m := req.Msg
	stream, err := channelStream("channel", m.GetChannel())
	if err != nil {
		return nil, err
	}
	if err := channel.ValidateFlagKey(m.GetKey()); err != nil {
		return nil, invalidf("key: %v", err)
	}
	if m.GetUnset() {
		if m.GetValue() != "" {
			return nil, invalidf("value: must be empty with unset")
		}
		res, err := c.s.execute(ctx, stream, &logbookv1.UnsetChannelFeatureFlag{Channel: m.GetChannel(), Key: m.GetKey()})
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(&logbookv1.SetChannelFlagResponse{Appended: appended(res)}), nil
	}
	if err := channel.ValidateFlagValue(m.GetValue()); err != nil {
		return nil, invalidf("value: %v", err)
	}
	res, err := c.s.execute(ctx, stream, &logbookv1.SetChannelFeatureFlag{Channel: m.GetChannel(), Key: m.GetKey(), Value: m.GetValue()})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.SetChannelFlagResponse{Appended: appended(res)}), nil
}

func (c channelService) ChannelHistory(ctx context.Context, req *connect.Request[logbookv1.ChannelHistoryRequest]) (*connect.Response[logbookv1.ChannelHistoryResponse], error) {
	m := req.Msg
	if m.GetChannel() != "" {
		if _, err := channelStream("channel", m.GetChannel()); err != nil {
			return nil, err
		}
	}
	limit, err := pageLimit(m.GetLimit())
	if err != nil {
		return nil, err
	}
	hist, err := readmodel.PromotionHistory(ctx, c.s.d.Models, readmodel.HistoryQuery{Channel: m.GetChannel(), Before: m.GetAfter(), Limit: limit})
	if err != nil {
		return nil, c.s.modelError(readmodel.ReleasesName, err)
	}
	out := &logbookv1.ChannelHistoryResponse{Promotions: make([]*logbookv1.PromotionRecord, len(hist))}
	for i, x := range hist {
		out.Promotions[i] = &logbookv1.PromotionRecord{
			Position: x.Position,
			Channel:  x.Channel,
			Kind:     x.Kind,
			Release:  x.Release,
			Previous: x.Previous,
			Reason:   x.Reason,
			By:       x.By,
			At:       timestamp(x.At),
		}
	}
	if len(hist) == limit {
		out.Next = hist[len(hist)-1].Position
	}
	return connect.NewResponse(out), nil
}

// Fan-out bounds: how many units are told at once, and how long a
// promotion waits for the fleet read model to reach it.
const (
	fanOutWorkers = 8
	fanOutWait    = 5 * time.Second
)

// notifyChannel tells every unit that follows channel ch that its release
// is now rel (ObserveUnitChannelRelease; each unit decides for itself, so
// a unit that moved to another channel meanwhile ignores it) and returns
// how many units follow the channel. The fleet read model says which units
// follow it; notifyChannel first waits, up to fanOutWait, for it to have
// applied the log up to position (the promotion), so that a unit assigned
// just before the promotion is not missed. (A unit assigned after that
// reads the channel's new release itself; see assignChannel.)
//
// When some units could not be told, the error says how many and that
// repeating the request is safe.
func (s *Server) notifyChannel(ctx context.Context, ch, rel string, position uint64) (int, error) {
	s.waitModel(ctx, readmodel.FleetName, position)
	var (
		mu     sync.Mutex
		told   int
		failed []error
	)
	work := make(chan string)
	var wg sync.WaitGroup
	for range fanOutWorkers {
		wg.Go(func() {
			for name := range work {
				_, err := s.execute(ctx, unit.Category+"-"+name, &logbookv1.ObserveUnitChannelRelease{Channel: ch, Release: rel})
				mu.Lock()
				switch {
				case err == nil:
					told++
				case errors.Is(err, unit.ErrChannelMismatch), errors.Is(err, unit.ErrDecommissioned):
					// Moved to another channel, or gone, since the read model saw it.
				default:
					failed = append(failed, fmt.Errorf("unit %s: %w", name, err))
				}
				mu.Unlock()
			}
		})
	}
	listErr := func() error {
		defer close(work)
		after := ""
		for {
			units, err := readmodel.ListUnits(ctx, s.d.Models, readmodel.UnitQuery{Channel: ch, After: after, Limit: readmodel.MaxLimit})
			if err != nil {
				return s.modelError(readmodel.FleetName, err)
			}
			for _, u := range units {
				select {
				case work <- u.Name:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if len(units) < readmodel.MaxLimit {
				return nil
			}
			after = units[len(units)-1].Name
		}
	}()
	wg.Wait()
	if listErr == nil && len(failed) == 0 {
		return told, nil
	}
	first := listErr
	if first == nil {
		first = failed[0]
	}
	code := connect.CodeOf(ConnectError(ctx, s.d.Logger, "notify channel", first))
	return told, connect.NewError(code, fmt.Errorf(
		"channel %s is on release %s, but not every unit on it was told (%d told, %d failed; first: %s); repeat the request to tell the rest",
		ch, rel, told, len(failed), userMessage(first)))
}

// waitModel waits until the read model has applied the log up to position,
// ctx ends or fanOutWait passes, whichever is first. Waiting is best
// effort: callers go on with what the read model has.
func (s *Server) waitModel(ctx context.Context, model string, position uint64) {
	wctx, cancel := context.WithTimeout(ctx, fanOutWait)
	defer cancel()
	if err := s.d.Runner.WaitPosition(wctx, model, position); err != nil && ctx.Err() == nil {
		st, _ := s.d.Runner.Status(model)
		s.d.Logger.WarnContext(ctx, "api: read model lags; going on with what it has",
			"model", model, "checkpoint", st.Checkpoint, "position", position, "err", err)
	}
}
