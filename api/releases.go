package api

import (
	"context"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/actors/release"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// releaseService implements logbookv1connect.ReleaseServiceHandler.
type releaseService struct{ s *Server }

func (r releaseService) PublishRelease(ctx context.Context, req *connect.Request[logbookv1.PublishReleaseRequest]) (*connect.Response[logbookv1.PublishReleaseResponse], error) {
	pub := req.Msg.GetRelease()
	if pub == nil {
		return nil, invalidf("release: required (version, repos, artifacts and optionally manifest and signer_public_key)")
	}
	stream, err := releaseStream("release.version", pub.GetVersion())
	if err != nil {
		return nil, err
	}
	// The release aggregate validates the rest and says what is wrong.
	res, err := r.s.execute(ctx, stream, pub)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.PublishReleaseResponse{Appended: appended(res)}), nil
}

func (r releaseService) ListReleases(ctx context.Context, req *connect.Request[logbookv1.ListReleasesRequest]) (*connect.Response[logbookv1.ListReleasesResponse], error) {
	limit, err := pageLimit(req.Msg.GetLimit())
	if err != nil {
		return nil, err
	}
	rels, err := readmodel.ListReleases(ctx, r.s.d.Models, readmodel.ReleaseQuery{
		IncludeYanked: req.Msg.GetIncludeYanked(),
		Before:        req.Msg.GetAfter(),
		Limit:         limit,
	})
	if err != nil {
		return nil, r.s.modelError(readmodel.ReleasesName, err)
	}
	out := &logbookv1.ListReleasesResponse{Releases: make([]*logbookv1.ReleaseSummary, len(rels))}
	for i, x := range rels {
		out.Releases[i] = &logbookv1.ReleaseSummary{
			Version:     x.Version,
			PublishedAt: timestamp(x.PublishedAt),
			PublishedBy: x.PublishedBy,
			Artifacts:   uint32(x.Artifacts),
			Platforms:   x.Platforms,
			Yanked:      x.Yanked,
			YankedAt:    timestamp(x.YankedAt),
			YankedBy:    x.YankedBy,
			YankReason:  x.YankReason,
			Position:    x.Position,
		}
	}
	if len(rels) == limit {
		out.Next = rels[len(rels)-1].PublishedPosition
	}
	return connect.NewResponse(out), nil
}

func (r releaseService) GetRelease(ctx context.Context, req *connect.Request[logbookv1.GetReleaseRequest]) (*connect.Response[logbookv1.GetReleaseResponse], error) {
	st, version, err := r.s.readRelease(ctx, "version", req.Msg.GetVersion())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.GetReleaseResponse{State: st, Version: version}), nil
}

func (r releaseService) YankRelease(ctx context.Context, req *connect.Request[logbookv1.YankReleaseRequest]) (*connect.Response[logbookv1.YankReleaseResponse], error) {
	version := req.Msg.GetVersion()
	stream, err := releaseStream("version", version)
	if err != nil {
		return nil, err
	}
	if err := checkText("reason", req.Msg.GetReason(), true, release.MaxReasonLen); err != nil {
		return nil, err
	}
	res, err := r.s.execute(ctx, stream, &logbookv1.YankRelease{Version: version, Reason: req.Msg.GetReason()})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.YankReleaseResponse{Appended: appended(res)}), nil
}
