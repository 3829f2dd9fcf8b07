package api

import (
	"context"
	"time"

	"connectrpc.com/connect"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// tokenService implements logbookv1connect.TokenServiceHandler.
type tokenService struct{ s *Server }

func (t tokenService) CreateToken(ctx context.Context, req *connect.Request[logbookv1.CreateTokenRequest]) (*connect.Response[logbookv1.CreateTokenResponse], error) {
	m := req.Msg
	info, secret, err := t.s.d.Tokens.Create(ctx, m.GetName(), m.GetRole(), time.Duration(m.GetTtlSeconds())*time.Second, MetadataFrom(ctx))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&logbookv1.CreateTokenResponse{Info: tokenInfo(info), Token: secret}), nil
}

func (t tokenService) ListTokens(ctx context.Context, req *connect.Request[logbookv1.ListTokensRequest]) (*connect.Response[logbookv1.ListTokensResponse], error) {
	list := t.s.d.Tokens.List()
	out := &logbookv1.ListTokensResponse{Tokens: make([]*logbookv1.TokenInfo, len(list))}
	for i, x := range list {
		out.Tokens[i] = tokenInfo(x)
	}
	return connect.NewResponse(out), nil
}

func (t tokenService) RevokeToken(ctx context.Context, req *connect.Request[logbookv1.RevokeTokenRequest]) (*connect.Response[logbookv1.RevokeTokenResponse], error) {
	id := req.Msg.GetId()
	if id == "" {
		return nil, invalidf("id: required (see ListTokens)")
	}
	res, err := t.s.d.Tokens.Revoke(ctx, id, MetadataFrom(ctx))
	if err != nil {
		return nil, err
	}
	stream := TokenCategory + "-" + id
	var n uint32
	if res.LastPosition != 0 {
		n = 1
	}
	return connect.NewResponse(&logbookv1.RevokeTokenResponse{Appended: &logbookv1.Appended{
		Stream: stream, Version: res.LastVersion, Position: res.LastPosition, Events: n,
	}}), nil
}

func (t tokenService) WhoAmI(ctx context.Context, req *connect.Request[logbookv1.WhoAmIRequest]) (*connect.Response[logbookv1.WhoAmIResponse], error) {
	p, _ := PrincipalFrom(ctx)
	info, ok := t.s.d.Tokens.Get(p.TokenID)
	if !ok {
		return nil, notFoundf("token %s is unknown", p.TokenID)
	}
	return connect.NewResponse(&logbookv1.WhoAmIResponse{Token: tokenInfo(info)}), nil
}

func tokenInfo(x TokenInfo) *logbookv1.TokenInfo {
	return &logbookv1.TokenInfo{
		Id:        x.ID,
		Name:      x.Name,
		Role:      x.Role,
		CreatedAt: timestamp(x.CreatedAt),
		CreatedBy: x.CreatedBy,
		ExpiresAt: timestamp(x.ExpiresAt),
		Revoked:   x.Revoked,
	}
}
