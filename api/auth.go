package api

import (
	"context"
	"net/http"
	"strings"
	"unicode"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/proto/logbook/v1/logbookv1connect"
)

// Principal is who called: the token's name and role.
type Principal struct {
	TokenID, Name, Role string
}

type principalKey struct{}

// PrincipalFrom returns the authenticated caller stored in ctx by the
// auth interceptor.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

type requestIDKey struct{}

// RequestIDHeader is the header that carries a request's correlation id:
// the client's, when it sends one, echoed in the response.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds a client-chosen request id.
const maxRequestIDLen = 128

// MetadataFrom returns the metadata of the events a request writes: the
// caller's principal name and the request's correlation id (the client's
// X-Request-Id, or a fresh id).
func MetadataFrom(ctx context.Context) events.Metadata {
	p, _ := PrincipalFrom(ctx)
	id, _ := ctx.Value(requestIDKey{}).(string)
	return events.Metadata{Principal: p.Name, CorrelationID: id}
}

// requestID returns the client's request id when it is a sane one, else a
// fresh one.
func requestID(h http.Header) string {
	id := h.Get(RequestIDHeader)
	if id != "" && len(id) <= maxRequestIDLen && !strings.ContainsFunc(id, func(r rune) bool {
		return r > unicode.MaxASCII || !unicode.IsPrint(r) || unicode.IsSpace(r)
	}) {
		return id
	}
	return events.NewID().String()
}

// permissions is the least role each procedure needs (see allows). A
// procedure missing here needs RoleAdmin: new RPCs fail closed until they
// are listed.
var permissions = map[string]string{
	logbookv1connect.UnitServiceRegisterUnitProcedure:         RoleOperator,
	logbookv1connect.UnitServiceListUnitsProcedure:            RoleRead,
	logbookv1connect.UnitServiceGetUnitProcedure:              RoleRead,
	logbookv1connect.UnitServiceSetUnitLabelsProcedure:        RoleOperator,
	logbookv1connect.UnitServiceAssignUnitChannelProcedure:    RoleOperator,
	logbookv1connect.UnitServicePinUnitReleaseProcedure:       RoleOperator,
	logbookv1connect.UnitServiceUnpinUnitReleaseProcedure:     RoleOperator,
	logbookv1connect.UnitServiceDecommissionUnitProcedure:     RoleOperator,
	logbookv1connect.UnitServiceCreateEnrolmentTokenProcedure: RoleOperator,

	logbookv1connect.ProcessServiceListProcessesProcedure: RoleRead,
	logbookv1connect.ProcessServiceGetProcessProcedure:    RoleRead,
	logbookv1connect.ProcessServiceSetProcessProcedure:    RoleOperator,

	logbookv1connect.ReleaseServicePublishReleaseProcedure: RoleOperator,
	logbookv1connect.ReleaseServiceListReleasesProcedure:   RoleRead,
	logbookv1connect.ReleaseServiceGetReleaseProcedure:     RoleRead,
	logbookv1connect.ReleaseServiceYankReleaseProcedure:    RoleOperator,

	logbookv1connect.ChannelServiceCreateChannelProcedure:   RoleOperator,
	logbookv1connect.ChannelServiceListChannelsProcedure:    RoleRead,
	logbookv1connect.ChannelServiceGetChannelProcedure:      RoleRead,
	logbookv1connect.ChannelServicePromoteReleaseProcedure:  RoleOperator,
	logbookv1connect.ChannelServiceRollbackChannelProcedure: RoleOperator,
	logbookv1connect.ChannelServiceSetChannelFlagProcedure:  RoleOperator,
	logbookv1connect.ChannelServiceChannelHistoryProcedure:  RoleRead,

	logbookv1connect.CommandServiceRunCommandProcedure:   RoleOperator,
	logbookv1connect.CommandServiceGetCommandProcedure:   RoleRead,
	logbookv1connect.CommandServiceListCommandsProcedure: RoleRead,
	logbookv1connect.CommandServiceWaitCommandProcedure:  RoleRead,

	logbookv1connect.EventServiceReadStreamProcedure: RoleRead,
	logbookv1connect.EventServiceReadAllProcedure:    RoleRead,
	logbookv1connect.EventServiceFollowProcedure:     RoleRead,
	logbookv1connect.EventServiceHeadProcedure:       RoleRead,
	logbookv1connect.EventServiceVerifyProcedure:     RoleRead,

	logbookv1connect.AuditServiceTimelineProcedure: RoleRead,
	logbookv1connect.AuditServiceStateAtProcedure:  RoleRead,
	logbookv1connect.AuditServiceDiffProcedure:     RoleRead,

	logbookv1connect.ProjectionServiceListProjectionsProcedure:   RoleRead,
	logbookv1connect.ProjectionServiceRebuildProjectionProcedure: RoleOperator,

	logbookv1connect.TokenServiceCreateTokenProcedure: RoleAdmin,
	logbookv1connect.TokenServiceListTokensProcedure:  RoleAdmin,
	logbookv1connect.TokenServiceRevokeTokenProcedure: RoleAdmin,
	logbookv1connect.TokenServiceWhoAmIProcedure:      RoleRead,

	logbookv1connect.ClusterServiceClusterStatusProcedure: RoleRead,
	// RemoveNode and TransferLeadership: admin (not listed).
}

// RoleFor returns the least role that may call procedure
// ("/logbook.v1.UnitService/ListUnits"): RoleAdmin for unknown ones.
func RoleFor(procedure string) string {
	if r, ok := permissions[procedure]; ok {
		return r
	}
	return RoleAdmin
}

// handlerOptions are the options of every service handler: the
// interceptor that authenticates calls and maps the errors handlers return
// to Connect codes (so handlers may return domain errors), and a bound on
// request size.
func (s *Server) handlerOptions() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithInterceptors(interceptor{s}),
		connect.WithReadMaxBytes(maxRequestBytes),
	}
}

// maxRequestBytes bounds a request message (a release with many
// artifacts and a command payload are the largest).
const maxRequestBytes = 8 << 20

// interceptor authenticates every call with its bearer token, checks the
// token's role against RoleFor(procedure), puts the Principal and a
// request id into the handler's context, echoes the request id in the
// response headers, and turns the handler's errors into Connect errors
// with ConnectError.
type interceptor struct{ s *Server }

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		procedure := req.Spec().Procedure
		ctx, id, err := i.s.authenticate(ctx, procedure, req.Header())
		if err != nil {
			return nil, withRequestID(err, id)
		}
		resp, err := next(ctx, req)
		if err != nil {
			return nil, withRequestID(ConnectError(ctx, i.s.d.Logger, procedure, err), id)
		}
		resp.Header().Set(RequestIDHeader, id)
		return resp, nil
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		procedure := conn.Spec().Procedure
		ctx, id, err := i.s.authenticate(ctx, procedure, conn.RequestHeader())
		conn.ResponseHeader().Set(RequestIDHeader, id)
		if err != nil {
			return err
		}
		return ConnectError(ctx, i.s.d.Logger, procedure, next(ctx, conn))
	}
}

// authenticate returns ctx with the caller's Principal and request id, or
// a Connect error (Unauthenticated or PermissionDenied).
func (s *Server) authenticate(ctx context.Context, procedure string, h http.Header) (context.Context, string, error) {
	id := requestID(h)
	ctx = context.WithValue(ctx, requestIDKey{}, id)
	p, err := s.d.Tokens.authorize(ctx, h, RoleFor(procedure))
	if err != nil {
		return ctx, id, ConnectError(ctx, s.d.Logger, procedure, err)
	}
	return WithPrincipal(ctx, p), id, nil
}

// withRequestID adds the request id to the metadata of a Connect error.
func withRequestID(err error, id string) error {
	if ce, ok := err.(*connect.Error); ok {
		ce.Meta().Set(RequestIDHeader, id)
	}
	return err
}
