package api_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/api"
	apiingest "github.com/logbook-fleet/logbook/api/ingest"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
	"github.com/logbook-fleet/logbook/proto/logbook/v1/logbookv1connect"
)

func TestAuthFailures(t *testing.T) {
	e := newEnv(t)
	revoked := e.token("revoked", api.RoleOperator)
	id, _, err := api.ParseToken(revoked)
	if err != nil {
		t.Fatal(err)
	}
	try(e.tokens.Revoke(e.ctx, id, events.Metadata{Principal: "test"})).must(t)
	_, expiring, err := e.tokens.Create(e.ctx, "expiring", api.RoleOperator, time.Hour, events.Metadata{Principal: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	read := e.token("reader", api.RoleRead)
	operator := e.token("operator", api.RoleOperator)
	ingest := e.token("ingester", api.RoleIngest)
	unknown := api.FormatToken("0123456789abcdef", make([]byte, 32))

	register := func(tok string) error {
		c := logbookv1connect.NewUnitServiceClient(e.srv.Client(), e.srv.URL, e.as(tok))
		_, err := c.RegisterUnit(e.ctx, connect.NewRequest(&logbookv1.RegisterUnitRequest{Unit: "ship1", Platform: "linux/arm64"}))
		return err
	}
	listTokens := func(tok string) error {
		c := logbookv1connect.NewTokenServiceClient(e.srv.Client(), e.srv.URL, e.as(tok))
		_, err := c.ListTokens(e.ctx, connect.NewRequest(&logbookv1.ListTokensRequest{}))
		return err
	}
	getUnit := func(tok string) error {
		c := logbookv1connect.NewUnitServiceClient(e.srv.Client(), e.srv.URL, e.as(tok))
		_, err := c.GetUnit(e.ctx, connect.NewRequest(&logbookv1.GetUnitRequest{Unit: "nobody"}))
		return err
	}
	for _, tc := range []struct {
		name string
		call func(string) error
		tok  string
		code connect.Code
		msg  string
	}{
		{"no token", register, "", connect.CodeUnauthenticated, "no token"},
		{"not a token", register, "hunter2", connect.CodeUnauthenticated, "malformed token"},
		{"unknown token", register, unknown, connect.CodeUnauthenticated, "unknown token"},
		{"wrong secret", register, revoked[:len(revoked)-4] + "AAAA", connect.CodeUnauthenticated, "unknown token"},
		{"revoked", register, revoked, connect.CodeUnauthenticated, "revoked"},
		{"expired", register, expiring, connect.CodeUnauthenticated, "expired"},
		{"read writes", register, read, connect.CodePermissionDenied, "needs role operator or admin"},
		{"operator lists tokens", listTokens, operator, connect.CodePermissionDenied, "needs role admin"},
		{"ingest reads", getUnit, ingest, connect.CodePermissionDenied, "has role ingest"},
		{"read reads", getUnit, read, connect.CodeNotFound, "not registered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := wantCode(t, tc.call(tc.tok), tc.code)
			wantContains(t, msg, tc.msg)
		})
	}
}

func TestAuthorizerForIngest(t *testing.T) {
	e := newEnv(t)
	authorize := e.tokens.Authorizer(func(*http.Request) string { return api.RoleIngest })
	ingest := e.token("sensors", api.RoleIngest)
	read := e.token("dashboard", api.RoleRead)
	for _, tc := range []struct {
		name, header, value string
		code                connect.Code // 0: allowed
	}{
		{"ingest token", "Authorization", "Bearer " + ingest, 0},
		{"api key header", "X-Api-Key", ingest, 0},
		{"admin token", "Authorization", "Bearer " + e.admin, 0},
		{"read token", "Authorization", "Bearer " + read, connect.CodePermissionDenied},
		{"no token", "", "", connect.CodeUnauthenticated},
		{"basic auth", "Authorization", "Basic dXNlcjpwYXNz", connect.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/ingest", nil)
			if tc.header != "" {
				r.Header.Set(tc.header, tc.value)
			}
			principal, err := authorize(r)
			if tc.code == 0 {
				if err != nil || principal == "" {
					t.Fatalf("authorize = %q, %v", principal, err)
				}
				return
			}
			wantCode(t, err, tc.code)
			want := apiingest.ErrUnauthenticated
			if tc.code == connect.CodePermissionDenied {
				want = apiingest.ErrForbidden
			}
			if !errors.Is(err, want) {
				t.Fatalf("authorize error %v does not wrap %v (the ingest handler's 401/403)", err, want)
			}
		})
	}
}

func TestTokenService(t *testing.T) {
	e := newEnv(t)
	created := try(e.tokensC.CreateToken(e.ctx, connect.NewRequest(&logbookv1.CreateTokenRequest{Name: "ci", Role: api.RoleOperator, TtlSeconds: 3600}))).must(t)
	tok := created.Msg.GetToken()
	if !strings.HasPrefix(tok, "lbk_"+created.Msg.GetInfo().GetId()+"_") || created.Msg.GetInfo().GetCreatedBy() != "admin" {
		t.Fatalf("CreateToken = %v", created.Msg)
	}
	_, err := e.tokensC.CreateToken(e.ctx, connect.NewRequest(&logbookv1.CreateTokenRequest{Name: "ci", Role: api.RoleRead}))
	wantCode(t, err, connect.CodeAlreadyExists)
	_, err = e.tokensC.CreateToken(e.ctx, connect.NewRequest(&logbookv1.CreateTokenRequest{Name: "x", Role: "root"}))
	wantContains(t, wantCode(t, err, connect.CodeInvalidArgument), "role \"root\"")
	_, err = e.tokensC.CreateToken(e.ctx, connect.NewRequest(&logbookv1.CreateTokenRequest{Name: "bad name", Role: api.RoleRead}))
	wantCode(t, err, connect.CodeInvalidArgument)

	who := logbookv1connect.NewTokenServiceClient(e.srv.Client(), e.srv.URL, e.as(tok))
	me := try(who.WhoAmI(e.ctx, connect.NewRequest(&logbookv1.WhoAmIRequest{}))).must(t)
	if me.Msg.GetToken().GetName() != "ci" || me.Msg.GetToken().GetRole() != api.RoleOperator {
		t.Fatalf("WhoAmI = %v", me.Msg)
	}
	list := try(e.tokensC.ListTokens(e.ctx, connect.NewRequest(&logbookv1.ListTokensRequest{}))).must(t)
	if n := len(list.Msg.GetTokens()); n != 2 {
		t.Fatalf("ListTokens: %d tokens, want 2 (admin, ci)", n)
	}

	// Another node following the same log knows the token, then its revocation.
	other, err := api.OpenTokens(e.ctx, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if p, err := other.Authenticate(e.ctx, tok); err != nil || p.Name != "ci" {
		t.Fatalf("other node: Authenticate = %v, %v", p, err)
	}
	id := created.Msg.GetInfo().GetId()
	rev := try(e.tokensC.RevokeToken(e.ctx, connect.NewRequest(&logbookv1.RevokeTokenRequest{Id: id}))).must(t)
	if rev.Msg.GetAppended().GetEvents() != 1 || rev.Msg.GetAppended().GetStream() != "token-"+id {
		t.Fatalf("RevokeToken = %v", rev.Msg)
	}
	again := try(e.tokensC.RevokeToken(e.ctx, connect.NewRequest(&logbookv1.RevokeTokenRequest{Id: id}))).must(t)
	if again.Msg.GetAppended().GetEvents() != 0 || again.Msg.GetAppended().GetVersion() != 2 {
		t.Fatalf("second RevokeToken: %v; want nothing appended, the stream at version 2", again.Msg)
	}
	_, err = e.tokensC.RevokeToken(e.ctx, connect.NewRequest(&logbookv1.RevokeTokenRequest{Id: "ffffffffffffffff"}))
	wantCode(t, err, connect.CodeNotFound)
	_, err = who.WhoAmI(e.ctx, connect.NewRequest(&logbookv1.WhoAmIRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
	// The other node learns of the revocation by following the log.
	for {
		if _, err := other.Authenticate(e.ctx, tok); err != nil {
			break
		}
		select {
		case <-e.ctx.Done():
			t.Fatal("the other node never saw the revocation")
		case <-time.After(5 * time.Millisecond):
		}
	}

	// Bootstrap happens once per log.
	if _, created, err := other.Bootstrap(e.ctx, "admin2"); err != nil || created {
		t.Fatalf("second Bootstrap = %v, %v", created, err)
	}
}

func TestParseToken(t *testing.T) {
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i * 7)
	}
	tok := api.FormatToken("0123456789abcdef", secret)
	if len(tok) != api.TokenLen {
		t.Fatalf("len(%q) = %d, want %d", tok, len(tok), api.TokenLen)
	}
	id, got, err := api.ParseToken(tok)
	if err != nil || id != "0123456789abcdef" || string(got) != string(secret) {
		t.Fatalf("ParseToken = %q, %x, %v", id, got, err)
	}
	for _, bad := range []string{"", "lbk_", tok[:len(tok)-1], tok + "A", strings.Replace(tok, "lbk_", "lbx_", 1),
		"lbk_0123456789ABCDEF" + tok[20:], tok[:20] + "-" + tok[21:]} {
		if _, _, err := api.ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(api.FormatToken("0123456789abcdef", make([]byte, 32)))
	f.Add("lbk_0000000000000000_")
	f.Add("Bearer lbk_")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := api.ParseToken(s)
		if err != nil {
			return
		}
		if len(secret) != 32 || len(id) != 16 {
			t.Fatalf("ParseToken(%q) = %q, %d bytes", s, id, len(secret))
		}
		if back := api.FormatToken(id, secret); back != s {
			t.Fatalf("FormatToken(ParseToken(%q)) = %q", s, back)
		}
	})
}
