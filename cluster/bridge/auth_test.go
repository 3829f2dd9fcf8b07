package bridge

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func isPermViolation(err error) bool {
	return errors.Is(err, nats.ErrPermissionViolation) || err != nil && strings.Contains(strings.ToLower(err.Error()), "permissions violation")
}

func TestUnitCannotActAsAnotherUnit(t *testing.T) {
	e := newEnv(t)
	passA, passB := e.enrolDirect("shipA"), e.enrolDirect("shipB")
	errsA := newAsyncErrs()
	a := connectUnit(t, e.srv.ClientURL(), "shipA", passA, errsA)
	b := connectUnit(t, e.srv.ClientURL(), "shipB", passB, nil)

	// The control plane sees what reaches the server on B's event subjects.
	spy, err := e.nc.SubscribeSync("shipB.event.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	t.Run("publish as B", func(t *testing.T) {
		if err := a.Publish("shipB.event.x.y", []byte("forged")); err != nil {
			t.Fatal(err)
		}
		if err := errsA.next(t); !isPermViolation(err) || !strings.Contains(err.Error(), "shipB.event.x.y") {
			t.Fatalf("async error %v; want a publish permissions violation on shipB.event.x.y", err)
		}
		// B's own publish goes through, and is the only one the spy sees.
		if err := b.Publish("shipB.event.x.y", []byte("real")); err != nil {
			t.Fatal(err)
		}
		m, err := spy.NextMsg(waitLimit)
		if err != nil || string(m.Data) != "real" {
			t.Fatalf("spy got %v, %v; want only B's own message", m, err)
		}
	})
	t.Run("publish commands or elsewhere", func(t *testing.T) {
		for _, subj := range []string{"shipA.command.x.y", "shipB.command.x.y", "logbook.enrol", "_INBOX.x", "$SYS.REQ.SERVER.PING"} {
			if err := a.Publish(subj, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := errsA.next(t); !isPermViolation(err) {
				t.Fatalf("publish to %s: async error %v; want a permissions violation", subj, err)
			}
		}
	})
	t.Run("subscribe to B", func(t *testing.T) {
		for _, subj := range []string{"shipB.command.>", "shipB.command.shellcommand.operatingsystem", "_INBOX_shipB.>", "*.command.>", ">", "shipB.event.>"} {
			sub, err := a.SubscribeSync(subj)
			if err != nil {
				t.Fatal(err)
			}
			if err := errsA.next(t); !isPermViolation(err) {
				t.Fatalf("subscribe %s: async error %v; want a permissions violation", subj, err)
			}
			_ = sub.Unsubscribe()
		}
	})
	t.Run("own subjects allowed", func(t *testing.T) {
		sub, err := a.SubscribeSync("shipA.command.>")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := e.nc.Publish("shipA.command.shellcommand.operatingsystem", []byte("cmd")); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(waitLimit); err != nil || string(m.Data) != "cmd" {
			t.Fatalf("A did not get its own command: %v, %v", m, err)
		}
		select {
		case err := <-errsA.ch:
			t.Fatalf("unexpected async error: %v", err)
		default:
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		for _, c := range []struct{ user, pass string }{
			{"shipA", passB}, {"shipA", ""}, {"shipC", passA}, {InternalUser, passA}, {EnrolUser, passA}, {"", ""},
		} {
			nc, err := dialUnit(e.srv.ClientURL(), c.user, c.pass, nil)
			if c.user == "" {
				nc, err = nats.Connect(e.srv.ClientURL(), nats.MaxReconnects(0))
			}
			if err == nil {
				nc.Close()
				t.Errorf("connected as %q with a wrong password", c.user)
			} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Errorf("connect as %q: %v; want an authorization error", c.user, err)
			}
		}
	})
	t.Run("revocation needs no restart", func(t *testing.T) {
		if err := e.creds.DeleteCredential(testCtx(t), "shipB"); err != nil {
			t.Fatal(err)
		}
		if n := e.srv.Kick("shipB"); n != 1 {
			t.Fatalf("kicked %d connections of shipB, want 1", n)
		}
		if _, err := dialUnit(e.srv.ClientURL(), "shipB", passB, nil); err == nil {
			t.Fatal("revoked unit connected")
		}
	})
}

func TestEnrolOverNATS(t *testing.T) {
	e := newEnv(t)
	e.start(nil)
	tok, err := e.enrol.IssueToken(testCtx(t), "ship7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	identity, _, _ := ed25519.GenerateKey(rand.Reader)
	enrolErrs := newAsyncErrs()
	enc, err := nats.Connect(e.srv.ClientURL(), nats.UserInfo(EnrolUser, tok), nats.CustomInboxPrefix(InboxPrefix("ship7")),
		nats.MaxReconnects(0), nats.ErrorHandler(enrolErrs.handler))
	if err != nil {
		t.Fatalf("connect to enrol: %v", err)
	}
	defer enc.Close()

	// The enrolling connection can do nothing else.
	if err := enc.Publish("ship7.event.x.y", nil); err != nil {
		t.Fatal(err)
	}
	if err := enrolErrs.next(t); !isPermViolation(err) {
		t.Fatalf("enrol user publishing an event: %v; want a permissions violation", err)
	}
	if _, err := enc.SubscribeSync("_INBOX_ship8.>"); err != nil {
		t.Fatal(err)
	}
	if err := enrolErrs.next(t); !isPermViolation(err) {
		t.Fatalf("enrol user reading another unit's inbox: %v; want a permissions violation", err)
	}

	request := func(req *logbookv1.AgentEnrolRequest) *logbookv1.AgentEnrolResponse {
		t.Helper()
		data, _ := proto.Marshal(req)
		m, err := enc.RequestWithContext(testCtx(t), EnrolSubject, data)
		if err != nil {
			t.Fatalf("enrol request: %v", err)
		}
		resp := new(logbookv1.AgentEnrolResponse)
		if err := proto.Unmarshal(m.Data, resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := request(&logbookv1.AgentEnrolRequest{Unit: "ship7", Token: "guess", PublicKey: identity}); resp.GetError() == "" || resp.GetNatsPassword() != "" {
		t.Fatalf("wrong token: %v", resp)
	}
	if resp := request(&logbookv1.AgentEnrolRequest{Unit: "ship7", Token: tok, PublicKey: identity[:5]}); !strings.Contains(resp.GetError(), "public key") {
		t.Fatalf("short public key: %v", resp)
	}
	resp := request(&logbookv1.AgentEnrolRequest{Unit: "ship7", Token: tok, PublicKey: identity})
	if resp.GetError() != "" || resp.GetNatsUser() != "ship7" || resp.GetNatsPassword() == "" ||
		len(resp.GetNatsUrls()) == 0 || !ed25519.PublicKey(resp.GetControlPlanePublicKey()).Equal(e.pub()) {
		t.Fatalf("enrolment response: %v", resp)
	}
	cred, err := e.creds.Credential(testCtx(t), "ship7")
	if err != nil || !ed25519.PublicKey(cred.PublicKey).Equal(identity) || !cred.Secret.Matches(resp.GetNatsPassword()) {
		t.Fatalf("stored credential %+v, %v", cred, err)
	}
	if cred.Secret.Sum == HashSecret(tok) || strings.Contains(string(cred.Secret.Sum[:]), resp.GetNatsPassword()) {
		t.Fatal("credential store holds the secret, not its hash")
	}
	// Single use.
	if again := request(&logbookv1.AgentEnrolRequest{Unit: "ship7", Token: tok, PublicKey: identity}); again.GetError() == "" {
		t.Fatalf("token used twice: %v", again)
	}
	if nc, err := nats.Connect(e.srv.ClientURL(), nats.UserInfo(EnrolUser, tok), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a used token still opens an enrolment connection")
	}
	// The credentials work.
	nc := connectUnit(t, resp.GetNatsUrls()[0], "ship7", resp.GetNatsPassword(), nil)
	if !nc.IsConnected() {
		t.Fatal("not connected")
	}
}

func TestEnrolTokens(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	creds := NewMemoryCredentials()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	en, err := NewEnroller(creds, pub, []string{"nats://x:4250"}, WithEnrollerClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	tok, err := en.IssueToken(ctx, "ship1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req := &logbookv1.AgentEnrolRequest{Unit: "ship2", Token: tok, PublicKey: pub}
	if _, err := en.Enrol(ctx, req); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token for another unit: %v", err)
	}
	req.Unit = "ship1"
	now = now.Add(time.Minute)
	if _, err := en.Enrol(ctx, req); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token: %v", err)
	}
	tok, _ = en.IssueToken(ctx, "ship1", time.Minute)
	req.Token = tok
	if _, err := en.Enrol(ctx, &logbookv1.AgentEnrolRequest{Unit: "bad name", Token: tok, PublicKey: pub}); !errors.Is(err, ErrInvalidEnrolment) {
		t.Fatalf("bad unit name: %v", err)
	}
	if _, err := en.Enrol(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := en.Enrol(ctx, req); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("reused token: %v", err)
	}
	if _, err := en.IssueToken(ctx, "a.b", time.Minute); err == nil {
		t.Fatal("token for an invalid unit name")
	}
}
