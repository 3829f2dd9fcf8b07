package bridge

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func mustLogCredentials(t *testing.T, st events.Store) *LogCredentials {
	t.Helper()
	c, err := NewLogCredentials(testCtx(t), st, WithCredentialsLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func mustCredential(t *testing.T, name string) (Credential, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pw := NewSecret()
	return Credential{Unit: name, Secret: NewSaltedHash(pw), PublicKey: pub, EnrolledAt: time.Now().UTC()}, pw
}

// TestCredentialStores is the contract every CredentialStore meets.
func TestCredentialStores(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) CredentialStore
	}{
		{"memory", func(*testing.T) CredentialStore { return NewMemoryCredentials() }},
		{"log", func(t *testing.T) CredentialStore { return mustLogCredentials(t, mustStore(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("credentials", func(t *testing.T) {
				ctx, cs := testCtx(t), tc.open(t)
				if _, err := cs.Credential(ctx, "ship1"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("missing credential: %v, want ErrNotFound", err)
				}
				c1, pw1 := mustCredential(t, "ship1")
				if err := cs.PutCredential(ctx, c1); err != nil {
					t.Fatal(err)
				}
				got, err := cs.Credential(ctx, "ship1")
				if err != nil || !got.Secret.Matches(pw1) || !bytes.Equal(got.PublicKey, c1.PublicKey) {
					t.Fatalf("credential %+v, %v", got, err)
				}
				c2, pw2 := mustCredential(t, "ship1")
				if err := cs.PutCredential(ctx, c2); err != nil {
					t.Fatal(err)
				}
				if got, err := cs.Credential(ctx, "ship1"); err != nil || got.Secret.Matches(pw1) || !got.Secret.Matches(pw2) {
					t.Fatalf("replaced credential %+v, %v: want only the new password to match", got, err)
				}
				if err := cs.DeleteCredential(ctx, "ship1"); err != nil {
					t.Fatal(err)
				}
				if _, err := cs.Credential(ctx, "ship1"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("deleted credential: %v, want ErrNotFound", err)
				}
				if err := cs.DeleteCredential(ctx, "ship9"); err != nil {
					t.Fatalf("deleting a missing credential: %v", err)
				}
			})
			t.Run("tokens", func(t *testing.T) {
				ctx, cs := testCtx(t), tc.open(t)
				now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
				tok := NewSecret()
				h := HashSecret(tok)
				if _, err := cs.Token(ctx, h, now); !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("unknown token: %v", err)
				}
				if err := cs.PutToken(ctx, EnrolToken{Hash: h, Unit: "ship1", ExpiresAt: now.Add(time.Minute)}); err != nil {
					t.Fatal(err)
				}
				if got, err := cs.Token(ctx, h, now); err != nil || got.Unit != "ship1" || got.Hash != h {
					t.Fatalf("token %+v, %v", got, err)
				}
				if _, err := cs.Token(ctx, h, now.Add(time.Minute)); !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("expired token: %v", err)
				}
				if _, err := cs.TakeToken(ctx, h, "ship2", now); !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("token taken for another unit: %v", err)
				}
				if _, err := cs.TakeToken(ctx, h, "ship1", now); err != nil {
					t.Fatalf("take: %v", err)
				}
				if _, err := cs.Token(ctx, h, now); !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("used token: %v", err)
				}
				if _, err := cs.TakeToken(ctx, h, "ship1", now); !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("token taken twice: %v", err)
				}
			})
			t.Run("token races", func(t *testing.T) {
				ctx, cs := testCtx(t), tc.open(t)
				now := time.Now()
				h := HashSecret(NewSecret())
				if err := cs.PutToken(ctx, EnrolToken{Hash: h, Unit: "ship1", ExpiresAt: now.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				if n := raceTakeToken(ctx, h, cs, cs, cs, cs, cs, cs, cs, cs); n != 1 {
					t.Fatalf("%d of 8 racing TakeToken calls succeeded, want 1", n)
				}
			})
		})
	}
}

// raceTakeToken calls TakeToken(h) once on each store, all at once, and
// returns how many succeeded.
func raceTakeToken(ctx context.Context, h SecretHash, stores ...CredentialStore) int {
	var (
		wins  atomic.Int64
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for _, cs := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := cs.TakeToken(ctx, h, "ship1", time.Now()); err == nil {
				wins.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	return int(wins.Load())
}

// TestLogCredentialsSurviveRestart: credentials and unused tokens are in
// the log, so a control plane that restarts (a new store over the same
// directory) has them; a used token stays used.
func TestLogCredentialsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	now := time.Now()
	cred, pw := mustCredential(t, "ship1")
	unused, used := HashSecret(NewSecret()), HashSecret(NewSecret())

	st, err := embedded.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := NewLogCredentials(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []SecretHash{unused, used} {
		if err := cs.PutToken(ctx, EnrolToken{Hash: h, Unit: "ship1", ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.TakeToken(ctx, used, "ship1", now); err != nil {
		t.Fatal(err)
	}
	if err := cs.PutCredential(ctx, cred); err != nil {
		t.Fatal(err)
	}
	_ = cs.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = embedded.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cs = mustLogCredentials(t, st)
	if got, err := cs.Credential(ctx, "ship1"); err != nil || !got.Secret.Matches(pw) || !bytes.Equal(got.PublicKey, cred.PublicKey) {
		t.Fatalf("credential after restart: %+v, %v", got, err)
	}
	if _, err := cs.Token(ctx, unused, now); err != nil {
		t.Fatalf("unused token after restart: %v", err)
	}
	if _, err := cs.Token(ctx, used, now); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("used token after restart: %v, want ErrInvalidToken", err)
	}
	if _, err := cs.TakeToken(ctx, unused, "ship1", now); err != nil {
		t.Fatalf("take unused token after restart: %v", err)
	}
}

// TestLogCredentialsShared: two control-plane nodes on one log see each
// other's credentials at once, a token is used once across both, and a
// deletion or a decommission made on one revokes on both.
func TestLogCredentialsShared(t *testing.T) {
	ctx := testCtx(t)
	st := mustStore(t)
	host := mustHost(t, st)
	a, b := mustLogCredentials(t, st), mustLogCredentials(t, st)
	revokedOnB := make(chan string, 8)
	stop := b.NotifyRevoked(func(u string) { revokedOnB <- u })
	defer stop()

	cred, pw := mustCredential(t, "ship1")
	if err := a.PutCredential(ctx, cred); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Credential(ctx, "ship1"); err != nil || !got.Secret.Matches(pw) {
		t.Fatalf("credential put on a, read on b: %+v, %v", got, err)
	}

	for range 5 {
		h := HashSecret(NewSecret())
		if err := a.PutToken(ctx, EnrolToken{Hash: h, Unit: "ship1", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if n := raceTakeToken(ctx, h, a, b, a, b); n != 1 {
			t.Fatalf("%d of 4 racing TakeToken calls on two nodes succeeded, want 1", n)
		}
	}

	if err := a.DeleteCredential(ctx, "ship1"); err != nil {
		t.Fatal(err)
	}
	if u := <-revokedOnB; u != "ship1" {
		t.Fatalf("revoked %q, want ship1", u)
	}
	if _, err := b.Credential(ctx, "ship1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted on a, read on b: %v", err)
	}

	// Decommission: the unit's own event revokes its credential.
	mustRegister(t, host, "ship2")
	cred2, _ := mustCredential(t, "ship2")
	if err := a.PutCredential(ctx, cred2); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Execute(ctx, "unit-ship2", &logbookv1.DecommissionUnit{Reason: "scrapped"}, events.Metadata{Principal: "test"}); err != nil {
		t.Fatal(err)
	}
	if u := <-revokedOnB; u != "ship2" {
		t.Fatalf("revoked %q, want ship2", u)
	}
	waitFor(t, "a to see the decommission", func() bool {
		_, _, dead := a.cachedCredential("ship2")
		return dead
	})
	for _, cs := range []*LogCredentials{a, b} {
		if _, err := cs.Credential(ctx, "ship2"); !errors.Is(err, ErrNotFound) || !errors.Is(err, unit.ErrDecommissioned) {
			t.Fatalf("credential of a decommissioned unit: %v", err)
		}
	}
	if err := a.PutCredential(ctx, cred2); !errors.Is(err, unit.ErrDecommissioned) {
		t.Fatalf("credential for a decommissioned unit stored: %v", err)
	}
	if err := a.PutToken(ctx, EnrolToken{Hash: HashSecret(NewSecret()), Unit: "ship2", ExpiresAt: time.Now().Add(time.Hour)}); !errors.Is(err, unit.ErrDecommissioned) {
		t.Fatalf("token for a decommissioned unit stored: %v", err)
	}
}

// waitFor polls cond; testCtx's limit turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestLogCredentialsKeepNoSecrets: neither a token nor a NATS password is
// anywhere in the log, and a password's hash is salted.
func TestLogCredentialsKeepNoSecrets(t *testing.T) {
	ctx := testCtx(t)
	st := mustStore(t)
	cs := mustLogCredentials(t, st)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	en, err := NewEnroller(cs, pub, []string{"nats://x:4250"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := en.IssueToken(ctx, "ship1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := en.Enrol(ctx, &logbookv1.AgentEnrolRequest{Unit: "ship1", Token: tok, PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	pw := resp.GetNatsPassword()
	plain := HashSecret(pw)
	n := 0
	for ev, err := range st.ReadAll(ctx, 1, events.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, secret := range [][]byte{[]byte(tok), []byte(pw), plain[:]} {
			if bytes.Contains(ev.Data, secret) || bytes.Contains([]byte(ev.Stream), secret) {
				t.Fatalf("event %d (%s in %s) holds a secret or its unsalted hash", ev.Position, ev.Type, ev.Stream)
			}
		}
	}
	if n != 3 { // token issued, token used, credential issued
		t.Fatalf("%d events in the log, want 3", n)
	}
}

// TestServerRestartKeepsUnitsEnrolled: a unit enrolled before the control
// plane restarts connects with its password afterwards; its token stays
// used.
func TestServerRestartKeepsUnitsEnrolled(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)

	start := func() (*Server, *LogCredentials, events.Store) {
		st, err := embedded.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := NewLogCredentials(ctx, st, WithCredentialsLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		return mustServer(t, cs), cs, st
	}
	srv, cs, st := start()
	en, err := NewEnroller(cs, pub, srv.AdvertiseURLs())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := en.IssueToken(ctx, "ship1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := en.Enrol(ctx, &logbookv1.AgentEnrolRequest{Unit: "ship1", Token: tok, PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	_ = srv.Close()
	_ = cs.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	srv, cs, st = start()
	defer st.Close()
	defer cs.Close()
	nc := connectUnit(t, srv.ClientURL(), "ship1", resp.GetNatsPassword(), nil)
	if !nc.IsConnected() {
		t.Fatal("not connected after the restart")
	}
	if enc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(EnrolUser, tok), nats.MaxReconnects(0)); err == nil {
		enc.Close()
		t.Fatal("a used token authenticates after the restart")
	}
	// Deleting the credential ends the unit's connection (the server kicks
	// revoked units by itself) and refuses the password from then on.
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := cs.DeleteCredential(ctx, "ship1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("revoked unit still connected")
	}
	if _, err := dialUnit(srv.ClientURL(), "ship1", resp.GetNatsPassword(), nil); err == nil {
		t.Fatal("revoked password accepted")
	}
}

// FuzzLogCredentialsApply: whatever bytes a credential event carries,
// folding it returns an error or applies it, never panics.
func FuzzLogCredentialsApply(f *testing.F) {
	h := HashSecret("token")
	seed := func(m proto.Message) []byte { b, _ := proto.Marshal(m); return b }
	f.Add(0, seed(&logbookv1.UnitCredentialIssued{Unit: "ship1", Salt: make([]byte, 16), SecretHash: make([]byte, 32)}), uint64(1))
	f.Add(1, seed(&logbookv1.UnitCredentialRevoked{Unit: "ship1"}), uint64(2))
	f.Add(2, seed(&logbookv1.EnrolTokenIssued{TokenHash: h[:], Unit: "ship1", ExpiresAt: timestamppb.Now()}), uint64(1))
	f.Add(3, seed(&logbookv1.EnrolTokenUsed{TokenHash: h[:], Unit: "ship1"}), uint64(2))
	f.Add(4, seed(&logbookv1.UnitDecommissioned{Reason: "x"}), uint64(9))
	types := []struct{ typ, stream string }{
		{typeCredentialIssued, CredentialStream("ship1")},
		{typeCredentialRevoked, CredentialStream("ship1")},
		{typeTokenIssued, EnrolTokenStream(h)},
		{typeTokenUsed, EnrolTokenStream(h)},
		{typeUnitDecommission, "unit-ship1"},
	}
	f.Fuzz(func(t *testing.T, kind int, data []byte, version uint64) {
		c := &LogCredentials{creds: map[string]credentialState{}, tokens: map[SecretHash]tokenState{},
			decommissioned: map[string]bool{}, listeners: map[int]func(string){}, wakeup: make(chan struct{}, 1)}
		k := types[uint(kind)%uint(len(types))]
		_ = c.apply(events.Event{Stream: k.stream, Type: k.typ, Data: data, Version: version})
		_, _ = c.cachedToken(h)
		_, _, _ = c.cachedCredential("ship1")
	})
}

// Re-enrolling a unit (a replaced or compromised agent) ends the
// connections made with its old credential.
func TestReEnrolmentEndsOldConnections(t *testing.T) {
	ctx := testCtx(t)
	st, err := embedded.Open(ctx, "reenrol", embedded.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs, err := NewLogCredentials(ctx, st, WithCredentialsLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	srv := mustServer(t, cs)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	en, err := NewEnroller(cs, pub, srv.AdvertiseURLs())
	if err != nil {
		t.Fatal(err)
	}
	enrol := func() string {
		t.Helper()
		tok, err := en.IssueToken(ctx, "ship1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := en.Enrol(ctx, &logbookv1.AgentEnrolRequest{Unit: "ship1", Token: tok, PublicKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetNatsPassword()
	}
	old := connectUnit(t, srv.ClientURL(), "ship1", enrol(), nil)
	closed := make(chan struct{})
	old.SetClosedHandler(func(*nats.Conn) { close(closed) })
	fresh := enrol()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("the old credential's connection outlived the re-enrolment")
	}
	if nc := connectUnit(t, srv.ClientURL(), "ship1", fresh, nil); !nc.IsConnected() {
		t.Fatal("the new credential does not connect")
	}
}
