package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/channel"
	"github.com/logbook-fleet/logbook/actors/release"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
	"github.com/logbook-fleet/logbook/proto/logbook/v1/logbookv1connect"
)

// mountCore mounts the unit, process, release, channel, command, token and
// cluster services.
func (s *Server) mountCore(mux *http.ServeMux, opts []connect.HandlerOption) {
	mux.Handle(logbookv1connect.NewUnitServiceHandler(unitService{s}, opts...))
	mux.Handle(logbookv1connect.NewProcessServiceHandler(processService{s}, opts...))
	mux.Handle(logbookv1connect.NewReleaseServiceHandler(releaseService{s}, opts...))
	mux.Handle(logbookv1connect.NewChannelServiceHandler(channelService{s}, opts...))
	mux.Handle(logbookv1connect.NewCommandServiceHandler(commandService{s}, opts...))
	mux.Handle(logbookv1connect.NewTokenServiceHandler(tokenService{s}, opts...))
	mux.Handle(logbookv1connect.NewClusterServiceHandler(clusterService{s}, opts...))
}

// execute has the entity of stream handle cmd on behalf of the caller in
// ctx (see MetadataFrom).
func (s *Server) execute(ctx context.Context, stream string, cmd proto.Message) (actors.Result, error) {
	return s.d.Host.Execute(ctx, stream, cmd, MetadataFrom(ctx))
}

// appended says what res appended.
func appended(res actors.Result) *logbookv1.Appended {
	return &logbookv1.Appended{
		Stream:   res.Stream,
		Version:  res.Version,
		Position: res.Appended.LastPosition,
		Events:   uint32(len(res.Events)),
	}
}

// unitStream validates a unit name from a request and returns its stream.
func unitStream(name string) (string, error) {
	if name == "" {
		return "", invalidf("unit: required (a unit name such as \"ship1\")")
	}
	s, err := unit.StreamName(name)
	if err != nil {
		return "", invalidf("unit: %v: use letters, digits, '-' and '_'", err)
	}
	return s, nil
}

// readUnit returns the state and version of a registered unit: NotFound
// when it was never registered.
func (s *Server) readUnit(ctx context.Context, name string) (*logbookv1.UnitState, uint64, error) {
	stream, err := unitStream(name)
	if err != nil {
		return nil, 0, err
	}
	res, err := s.d.Host.Read(ctx, stream)
	if err != nil {
		return nil, 0, err
	}
	st := res.State.(*logbookv1.UnitState)
	if st.GetStatus() == logbookv1.UnitStatus_UNIT_STATUS_UNSPECIFIED {
		return nil, 0, notFoundf("unit %s is not registered (see ListUnits, or RegisterUnit)", name)
	}
	return st, res.Version, nil
}

// activeUnit is readUnit that also refuses a decommissioned unit.
func (s *Server) activeUnit(ctx context.Context, name string) (*logbookv1.UnitState, error) {
	st, _, err := s.readUnit(ctx, name)
	if err != nil {
		return nil, err
	}
	if st.GetStatus() == logbookv1.UnitStatus_UNIT_STATUS_DECOMMISSIONED {
		return nil, preconditionf("unit %s is decommissioned (at %s)", name, st.GetDecommissionedAt().AsTime().Format("2006-01-02T15:04:05Z07:00"))
	}
	return st, nil
}

// channelStream validates a channel name from a request.
func channelStream(field, name string) (string, error) {
	if name == "" {
		return "", invalidf("%s: required (a channel name such as \"stable\")", field)
	}
	if err := channel.ValidateName(name); err != nil {
		return "", invalidf("%s: %v", field, err)
	}
	return channel.Stream(name), nil
}

// readChannel returns the state and version of a created channel, or
// NotFound.
func (s *Server) readChannel(ctx context.Context, field, name string) (*logbookv1.ChannelState, uint64, error) {
	stream, err := channelStream(field, name)
	if err != nil {
		return nil, 0, err
	}
	res, err := s.d.Host.Read(ctx, stream)
	if err != nil {
		return nil, 0, err
	}
	st := res.State.(*logbookv1.ChannelState)
	if !st.GetCreated() {
		return nil, 0, notFoundf("channel %s does not exist (see ListChannels, or CreateChannel)", name)
	}
	return st, res.Version, nil
}

// releaseStream validates a release version from a request.
func releaseStream(field, version string) (string, error) {
	if version == "" {
		return "", invalidf("%s: required (a release version such as \"2026.11.3\")", field)
	}
	if err := release.ValidateVersion(version); err != nil {
		return "", invalidf("%s: %v", field, err)
	}
	return release.Stream(version), nil
}

// readRelease returns the state and version of a published (possibly
// yanked) release, or NotFound.
func (s *Server) readRelease(ctx context.Context, field, version string) (*logbookv1.ReleaseState, uint64, error) {
	stream, err := releaseStream(field, version)
	if err != nil {
		return nil, 0, err
	}
	res, err := s.d.Host.Read(ctx, stream)
	if err != nil {
		return nil, 0, err
	}
	st := res.State.(*logbookv1.ReleaseState)
	if st.GetStatus() == logbookv1.ReleaseStatus_RELEASE_STATUS_UNSPECIFIED {
		return nil, 0, notFoundf("release %s is not published (see ListReleases, or PublishRelease)", version)
	}
	return st, res.Version, nil
}

// usableRelease reads a release that may be deployed: published and not
// yanked.
func (s *Server) usableRelease(ctx context.Context, field, version string) (*logbookv1.ReleaseState, error) {
	st, _, err := s.readRelease(ctx, field, version)
	if err != nil {
		return nil, err
	}
	if st.GetStatus() == logbookv1.ReleaseStatus_RELEASE_STATUS_YANKED {
		return nil, preconditionf("release %s is yanked (%q, by %s); choose another release", version, st.GetYankReason(), st.GetYankedBy())
	}
	return st, nil
}

// modelError passes a read model's readiness error on, named for the
// API, as Unavailable (see codes): the runner's message (see
// projections.Runner.Ready) already says where the read model is.
func (s *Server) modelError(model string, err error) error {
	if !errors.Is(err, projections.ErrNotReady) {
		return err
	}
	return fmt.Errorf("read model %s: %w", model, err)
}

// pageLimit validates a page size: 0 means readmodel.DefaultLimit.
func pageLimit(limit uint32) (int, error) {
	if limit > readmodel.MaxLimit {
		return 0, invalidf("limit %d: at most %d", limit, readmodel.MaxLimit)
	}
	if limit == 0 {
		return readmodel.DefaultLimit, nil
	}
	return int(limit), nil
}

// checkText validates a free-text request field.
func checkText(field, s string, required bool, maxLen int) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return invalidf("%s: required", field)
	case len(s) > maxLen:
		return invalidf("%s: %d bytes, at most %d", field, len(s), maxLen)
	case !utf8.ValidString(s):
		return invalidf("%s: not valid UTF-8", field)
	}
	return nil
}
