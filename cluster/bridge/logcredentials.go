package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Streams and event types of the credentials kept in the log (see
// proto/logbook/v1/credential.proto).
const (
	// CredentialCategory is the category of "credential-<unit>".
	CredentialCategory = "credential"
	// EnrolTokenCategory is the category of "enroltoken-<hex of the token's SHA-256>".
	EnrolTokenCategory = "enroltoken"
)

var (
	typeCredentialIssued  = fullName(&logbookv1.UnitCredentialIssued{})
	typeCredentialRevoked = fullName(&logbookv1.UnitCredentialRevoked{})
	typeTokenIssued       = fullName(&logbookv1.EnrolTokenIssued{})
	typeTokenUsed         = fullName(&logbookv1.EnrolTokenUsed{})
	typeUnitDecommission  = fullName(&logbookv1.UnitDecommissioned{})
)

func fullName(m proto.Message) string { return string(m.ProtoReflect().Descriptor().FullName()) }

// credentialFilter selects every event LogCredentials folds.
var credentialFilter = events.Filter{
	Categories: []string{CredentialCategory, EnrolTokenCategory, unit.Category},
	Types:      []string{typeCredentialIssued, typeCredentialRevoked, typeTokenIssued, typeTokenUsed, typeUnitDecommission},
}

// CredentialStream is the stream of unit u's credential events.
func CredentialStream(u string) string { return CredentialCategory + "-" + u }

// EnrolTokenStream is the stream of the enrolment token with hash h.
func EnrolTokenStream(h SecretHash) string {
	return EnrolTokenCategory + "-" + hex.EncodeToString(h[:])
}

// LogCredentials is the control plane's CredentialStore: credentials and
// enrolment tokens are events in the log (credential.proto), so they
// survive restarts and every control-plane node sharing the log sees the
// same ones. Only hashes are stored: a salted SHA-256 of each NATS
// password, the SHA-256 of each token.
//
// Each LogCredentials folds the log into memory: NewLogCredentials reads
// it up to its head before returning, then a goroutine follows it, so
// changes made by other nodes arrive within the subscription's lag.
// Lookups (Credential, Token: one per NATS connection) answer from memory;
// a miss reads the one stream concerned, so a unit that enrolled through
// another node a moment ago can connect at once. Writes append and apply
// their own events at once (read-your-writes).
//
// TakeToken decides on the token's stream in the log, not on memory: it
// appends EnrolTokenUsed expecting version 1, so a token is used at most
// once across all nodes, however enrolments race.
//
// A UnitDecommissioned event revokes the unit's credential for good, and
// no credential or token can be stored for a decommissioned unit
// (unit.ErrDecommissioned).
//
// Revocations (a credential deleted, or the unit decommissioned, here or
// on another node) are reported to the functions given to NotifyRevoked,
// one at a time, from a goroutine of the LogCredentials: StartServer
// registers Server.Kick there, so a revoked unit's live connections end on
// every node. A re-enrolment revokes the old credential too: its
// connections end (and one already made with the new credential, whose
// agent reconnects).
//
// Methods are safe for concurrent use. Close stops the follower.
type LogCredentials struct {
	store  events.Store
	now    func() time.Time
	logger *slog.Logger

	mu             sync.RWMutex
	creds          map[string]credentialState
	tokens         map[SecretHash]tokenState
	decommissioned map[string]bool

	revokeMu  sync.Mutex
	listeners map[int]func(string)
	nextID    int
	revoked   []string      // units waiting to be reported
	wakeup    chan struct{} // capacity 1

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
}

// credentialState is the fold of one credential stream.
type credentialState struct {
	version uint64
	cred    *Credential // nil: revoked or never issued
}

// tokenState is the fold of one token stream.
type tokenState struct {
	version uint64
	token   EnrolToken
	used    bool
}

var (
	_ CredentialStore    = (*LogCredentials)(nil)
	_ RevocationNotifier = (*LogCredentials)(nil)
)

// RevocationNotifier is implemented by credential stores that learn of
// revocations made elsewhere (LogCredentials). StartServer registers
// Server.Kick with it.
type RevocationNotifier interface {
	// NotifyRevoked calls f with the unit's name after a unit's credential
	// was revoked and not replaced, until cancel is called. f must not
	// block long.
	NotifyRevoked(f func(unitName string)) (cancel func())
}

// LogCredentialsOption configures NewLogCredentials.
type LogCredentialsOption func(*LogCredentials) error

// WithCredentialsClock sets the clock that stamps revocations and token
// uses (default time.Now).
func WithCredentialsClock(now func() time.Time) LogCredentialsOption {
	return func(c *LogCredentials) error {
		if now == nil {
			return errors.New("WithCredentialsClock: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithCredentialsLogger sets the logger for the follower's errors (default
// slog.Default()).
func WithCredentialsLogger(l *slog.Logger) LogCredentialsOption {
	return func(c *LogCredentials) error {
		if l == nil {
			return errors.New("WithCredentialsLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// followRetry is the pause before the follower subscribes again after an
// error of the store.
const followRetry = time.Second

// NewLogCredentials returns the credential store kept in store's log. It
// reads the credential, token and decommission events up to the log's head
// before it returns (ctx bounds that read), then follows the log until
// Close. The caller keeps owning store: Close the LogCredentials first.
//
// For `logbook serve`:
//
//	creds, err := bridge.NewLogCredentials(ctx, store)
//	if err != nil { ... }
//	defer creds.Close()
//	srv, err := bridge.StartServer(ctx, creds, bridge.DefaultServerConfig())
//	enroller, err := bridge.NewEnroller(creds, signingPub, srv.AdvertiseURLs())
func NewLogCredentials(ctx context.Context, store events.Store, opts ...LogCredentialsOption) (*LogCredentials, error) {
	if store == nil {
		return nil, errors.New("bridge: NewLogCredentials: nil store")
	}
	c := &LogCredentials{
		store: store, now: time.Now, logger: slog.Default(),
		creds: map[string]credentialState{}, tokens: map[SecretHash]tokenState{}, decommissioned: map[string]bool{},
		listeners: map[int]func(string){}, wakeup: make(chan struct{}, 1), done: make(chan struct{}),
	}
	var errs []error
	for _, o := range opts {
		if err := o(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bridge: NewLogCredentials: %w", err)
	}
	head, err := store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("bridge: load credentials: %w", err)
	}
	// ReadAll stops at the head when it starts, which is at or after head;
	// the follower starts after head, and applying an event twice is a
	// no-op (see apply).
	for ev, err := range store.ReadAll(ctx, 1, credentialFilter) {
		if err != nil {
			return nil, fmt.Errorf("bridge: load credentials: %w", err)
		}
		if err := c.apply(ev); err != nil {
			return nil, fmt.Errorf("bridge: load credentials: %w", err)
		}
	}
	c.revokeMu.Lock()
	c.revoked = nil // revocations of the past are not news
	c.revokeMu.Unlock()
	select {
	case <-c.wakeup:
	default:
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.follow(runCtx, head.Position+1) }()
	go func() { defer c.wg.Done(); c.notify(runCtx) }()
	return c, nil
}

// Close stops following the log and waits; it is idempotent.
func (c *LogCredentials) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		close(c.done)
	})
	return nil
}

// Done is closed once Close has stopped everything.
func (c *LogCredentials) Done() <-chan struct{} { return c.done }

// follow applies the log's new events from position from on until ctx is
// done, subscribing again after an error.
func (c *LogCredentials) follow(ctx context.Context, from uint64) {
	for ctx.Err() == nil {
		for ev, err := range c.store.Subscribe(ctx, from, credentialFilter) {
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, events.ErrClosed) {
					return // closing: resubscribing would fail forever
				}
				c.logger.Error("bridge: following credentials", "position", from, "err", err)
				break
			}
			from = ev.Position + 1
			if err := c.apply(ev); err != nil {
				c.logger.Error("bridge: credential event skipped", "position", ev.Position, "stream", ev.Stream, "err", err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(followRetry):
		}
	}
}

// apply folds one event into memory. An event at or below the version
// already folded for its stream is ignored, so events may come twice and
// out of stream order across streams (a miss's stream read, the follower,
// the writer's own apply).
func (c *LogCredentials) apply(ev events.Event) error {
	category, id, err := events.SplitStream(ev.Stream)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Type {
	case typeCredentialIssued:
		m := new(logbookv1.UnitCredentialIssued)
		if err := proto.Unmarshal(ev.Data, m); err != nil {
			return fmt.Errorf("decode %s: %w", ev.Type, err)
		}
		cred, err := credentialFromEvent(m)
		if err != nil {
			return err
		}
		if category != CredentialCategory || cred.Unit != id {
			return fmt.Errorf("%s for unit %q in stream %s", ev.Type, cred.Unit, ev.Stream)
		}
		if st := c.creds[id]; ev.Version > st.version {
			st.version = ev.Version
			st.cred = nil
			if !c.decommissioned[id] {
				st.cred = &cred
			}
			c.creds[id] = st
		}
	case typeCredentialRevoked:
		if category != CredentialCategory {
			return fmt.Errorf("%s in stream %s", ev.Type, ev.Stream)
		}
		if st := c.creds[id]; ev.Version > st.version {
			if st.cred != nil {
				c.revokedLocked(id)
			}
			c.creds[id] = credentialState{version: ev.Version}
		}
	case typeTokenIssued, typeTokenUsed:
		if category != EnrolTokenCategory {
			return fmt.Errorf("%s in stream %s", ev.Type, ev.Stream)
		}
		return c.applyToken(ev)
	case typeUnitDecommission:
		if category != unit.Category {
			return nil
		}
		c.decommissioned[id] = true
		if st := c.creds[id]; st.cred != nil {
			st.cred = nil
			c.creds[id] = st
			c.revokedLocked(id)
		}
	}
	return nil
}

func (c *LogCredentials) applyToken(ev events.Event) error {
	var (
		hash []byte
		st   tokenState
	)
	switch ev.Type {
	case typeTokenIssued:
		m := new(logbookv1.EnrolTokenIssued)
		if err := proto.Unmarshal(ev.Data, m); err != nil {
			return fmt.Errorf("decode %s: %w", ev.Type, err)
		}
		hash = m.GetTokenHash()
		st.token = EnrolToken{Unit: m.GetUnit(), ExpiresAt: m.GetExpiresAt().AsTime()}
	default:
		m := new(logbookv1.EnrolTokenUsed)
		if err := proto.Unmarshal(ev.Data, m); err != nil {
			return fmt.Errorf("decode %s: %w", ev.Type, err)
		}
		hash = m.GetTokenHash()
		st.used = true
	}
	if len(hash) != sha256.Size {
		return fmt.Errorf("%s: token hash is %d bytes, want %d", ev.Type, len(hash), sha256.Size)
	}
	h := SecretHash(hash)
	if ev.Stream != EnrolTokenStream(h) {
		return fmt.Errorf("%s for token %x in stream %s", ev.Type, hash, ev.Stream)
	}
	old := c.tokens[h]
	if ev.Version <= old.version {
		return nil
	}
	if st.used {
		st.token = old.token
	}
	st.token.Hash = h
	st.version = ev.Version
	c.tokens[h] = st
	return nil
}

func credentialFromEvent(m *logbookv1.UnitCredentialIssued) (Credential, error) {
	var c Credential
	if len(m.GetSalt()) != SaltSize || len(m.GetSecretHash()) != sha256.Size {
		return c, fmt.Errorf("credential of %q: salt %d bytes and hash %d bytes, want %d and %d",
			m.GetUnit(), len(m.GetSalt()), len(m.GetSecretHash()), SaltSize, sha256.Size)
	}
	c.Unit = m.GetUnit()
	copy(c.Secret.Salt[:], m.GetSalt())
	copy(c.Secret.Sum[:], m.GetSecretHash())
	c.PublicKey = append([]byte(nil), m.GetPublicKey()...)
	c.EnrolledAt = m.GetEnrolledAt().AsTime()
	return c, nil
}

// revokedLocked queues u for the revocation listeners; c.mu is held.
func (c *LogCredentials) revokedLocked(u string) {
	c.revokeMu.Lock()
	c.revoked = append(c.revoked, u)
	c.revokeMu.Unlock()
	select {
	case c.wakeup <- struct{}{}:
	default:
	}
}

// NotifyRevoked implements RevocationNotifier.
func (c *LogCredentials) NotifyRevoked(f func(unitName string)) (cancel func()) {
	c.revokeMu.Lock()
	defer c.revokeMu.Unlock()
	id := c.nextID
	c.nextID++
	c.listeners[id] = f
	return func() {
		c.revokeMu.Lock()
		defer c.revokeMu.Unlock()
		delete(c.listeners, id)
	}
}

// notify reports queued revocations to the listeners until ctx is done.
func (c *LogCredentials) notify(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wakeup:
		}
		c.revokeMu.Lock()
		units := c.revoked
		c.revoked = nil
		fs := make([]func(string), 0, len(c.listeners))
		for _, f := range c.listeners {
			fs = append(fs, f)
		}
		c.revokeMu.Unlock()
		for _, u := range units {
			// Also after a re-enrolment: the old credential's
			// connections, on any node, must end. A connection already
			// made with the new one ends too, and its agent reconnects.
			for _, f := range fs {
				f(u)
			}
		}
	}
}

// loadStream folds stream from the log into memory: the answer to a miss.
// A stream that does not exist is not an error.
func (c *LogCredentials) loadStream(ctx context.Context, stream string) error {
	for ev, err := range c.store.ReadStream(ctx, stream, 1) {
		if errors.Is(err, events.ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if err := c.apply(ev); err != nil {
			return fmt.Errorf("%s at version %d: %w", stream, ev.Version, err)
		}
	}
	return nil
}

// appendAndApply appends evs to stream and folds them in at once.
func (c *LogCredentials) appendAndApply(ctx context.Context, stream string, expect events.Expect, evs ...events.Event) error {
	res, err := c.store.Append(ctx, stream, expect, evs...)
	if err != nil {
		return err
	}
	for i, ev := range evs {
		ev.Stream, ev.Version, ev.Position = stream, res.FirstVersion+uint64(i), res.FirstPosition+uint64(i)
		if err := c.apply(ev); err != nil {
			return err
		}
	}
	return nil
}

var credentialMetadata = events.Metadata{Principal: "logbook-bridge"}

func newEvent(msg proto.Message) (events.Event, error) {
	return events.NewEvent(msg, credentialMetadata)
}

// Credential implements CredentialStore.
func (c *LogCredentials) Credential(ctx context.Context, unitName string) (Credential, error) {
	if cred, ok, dead := c.cachedCredential(unitName); ok || dead {
		if dead {
			return Credential{}, fmt.Errorf("credential of unit %q: %w (%w)", unitName, ErrNotFound, unit.ErrDecommissioned)
		}
		return cred, nil
	}
	if err := events.ValidateStream(CredentialStream(unitName)); err != nil {
		return Credential{}, fmt.Errorf("credential of unit %q: %w", unitName, ErrNotFound)
	}
	if err := c.loadStream(ctx, CredentialStream(unitName)); err != nil {
		return Credential{}, fmt.Errorf("credential of unit %q: %w", unitName, err)
	}
	if cred, ok, _ := c.cachedCredential(unitName); ok {
		return cred, nil
	}
	return Credential{}, fmt.Errorf("credential of unit %q: %w", unitName, ErrNotFound)
}

// cachedCredential returns the folded credential of u, and whether u is
// decommissioned.
func (c *LogCredentials) cachedCredential(u string) (cred Credential, ok, decommissioned bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.decommissioned[u] {
		return Credential{}, false, true
	}
	st := c.creds[u]
	if st.cred == nil {
		return Credential{}, false, false
	}
	cred = *st.cred
	cred.PublicKey = append([]byte(nil), cred.PublicKey...)
	return cred, true, false
}

// PutCredential implements CredentialStore: it appends UnitCredentialIssued
// (after UnitCredentialRevoked when the unit had a credential) to
// credential-<unit>. A decommissioned unit gets an error wrapping
// unit.ErrDecommissioned.
func (c *LogCredentials) PutCredential(ctx context.Context, cred Credential) error {
	if err := unit.ValidateName(cred.Unit); err != nil {
		return fmt.Errorf("store credential: %w", err)
	}
	if cred.Secret == (SaltedHash{}) {
		return fmt.Errorf("store credential of %s: no secret hash", cred.Unit)
	}
	_, had, dead := c.cachedCredential(cred.Unit)
	if dead {
		return fmt.Errorf("store credential of %s: %w", cred.Unit, unit.ErrDecommissioned)
	}
	var evs []events.Event
	if had {
		ev, err := newEvent(&logbookv1.UnitCredentialRevoked{Unit: cred.Unit, Reason: "replaced by a new credential", At: timestamppb.New(c.now())})
		if err != nil {
			return err
		}
		evs = append(evs, ev)
	}
	ev, err := newEvent(&logbookv1.UnitCredentialIssued{
		Unit: cred.Unit, Salt: cred.Secret.Salt[:], SecretHash: cred.Secret.Sum[:],
		PublicKey: cred.PublicKey, EnrolledAt: timestamppb.New(cred.EnrolledAt),
	})
	if err != nil {
		return err
	}
	evs = append(evs, ev)
	if err := c.appendAndApply(ctx, CredentialStream(cred.Unit), events.Any, evs...); err != nil {
		return fmt.Errorf("store credential of %s: %w", cred.Unit, err)
	}
	return nil
}

// DeleteCredential implements CredentialStore: it appends
// UnitCredentialRevoked when the unit has a credential.
func (c *LogCredentials) DeleteCredential(ctx context.Context, unitName string) error {
	if _, err := c.Credential(ctx, unitName); errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("delete credential: %w", err)
	}
	ev, err := newEvent(&logbookv1.UnitCredentialRevoked{Unit: unitName, Reason: "deleted", At: timestamppb.New(c.now())})
	if err != nil {
		return err
	}
	if err := c.appendAndApply(ctx, CredentialStream(unitName), events.Any, ev); err != nil {
		return fmt.Errorf("delete credential of %s: %w", unitName, err)
	}
	return nil
}

// PutToken implements CredentialStore: it starts the token's stream with
// EnrolTokenIssued. A token for a decommissioned unit gets an error
// wrapping unit.ErrDecommissioned.
func (c *LogCredentials) PutToken(ctx context.Context, t EnrolToken) error {
	if _, _, dead := c.cachedCredential(t.Unit); dead {
		return fmt.Errorf("store enrolment token for %s: %w", t.Unit, unit.ErrDecommissioned)
	}
	ev, err := newEvent(&logbookv1.EnrolTokenIssued{TokenHash: t.Hash[:], Unit: t.Unit, ExpiresAt: timestamppb.New(t.ExpiresAt)})
	if err != nil {
		return err
	}
	if err := c.appendAndApply(ctx, EnrolTokenStream(t.Hash), events.NoStream, ev); err != nil {
		return fmt.Errorf("store enrolment token for %s: %w", t.Unit, err)
	}
	return nil
}

// Token implements CredentialStore.
func (c *LogCredentials) Token(ctx context.Context, h SecretHash, now time.Time) (EnrolToken, error) {
	st, ok := c.cachedToken(h)
	if !ok {
		if err := c.loadStream(ctx, EnrolTokenStream(h)); err != nil {
			return EnrolToken{}, fmt.Errorf("enrolment token: %w", err)
		}
		st, ok = c.cachedToken(h)
	}
	if !ok || st.used || !now.Before(st.token.ExpiresAt) {
		return EnrolToken{}, ErrInvalidToken
	}
	return st.token, nil
}

func (c *LogCredentials) cachedToken(h SecretHash) (tokenState, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	st, ok := c.tokens[h]
	return st, ok && st.version > 0 && st.token.Unit != ""
}

// TakeToken implements CredentialStore. It reads the token's stream from
// the log and appends EnrolTokenUsed expecting the stream at version 1
// (issued, unused), so one of racing calls, on any node, wins.
func (c *LogCredentials) TakeToken(ctx context.Context, h SecretHash, unitName string, now time.Time) (EnrolToken, error) {
	stream := EnrolTokenStream(h)
	if err := c.loadStream(ctx, stream); err != nil {
		return EnrolToken{}, fmt.Errorf("enrolment token: %w", err)
	}
	st, ok := c.cachedToken(h)
	if !ok || st.used || st.version != 1 || st.token.Unit != unitName || !now.Before(st.token.ExpiresAt) {
		return EnrolToken{}, ErrInvalidToken
	}
	if _, _, dead := c.cachedCredential(unitName); dead {
		return EnrolToken{}, fmt.Errorf("%w (%w)", ErrInvalidToken, unit.ErrDecommissioned)
	}
	ev, err := newEvent(&logbookv1.EnrolTokenUsed{TokenHash: h[:], Unit: unitName, At: timestamppb.New(now)})
	if err != nil {
		return EnrolToken{}, err
	}
	switch err := c.appendAndApply(ctx, stream, events.Exactly(1), ev); {
	case errors.Is(err, events.ErrWrongExpectedVersion):
		return EnrolToken{}, ErrInvalidToken
	case err != nil:
		return EnrolToken{}, fmt.Errorf("use enrolment token: %w", err)
	}
	return st.token, nil
}
