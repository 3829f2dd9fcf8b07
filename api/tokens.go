package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/api/ingest"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Errors of Tokens besides ErrUnauthenticated, ErrPermissionDenied and
// ErrInvalidArgument.
var (
	// ErrTokenNotFound: no token has the id.
	ErrTokenNotFound = errors.New("token not found")
	// ErrTokenExists: an active token already has the name.
	ErrTokenExists = errors.New("token name in use")
)

// Roles of tokens. Admin may call everything; operator everything but the
// token RPCs; read the read-only RPCs; ingest only the ingest endpoint.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleRead     = "read"
	RoleIngest   = "ingest"
)

// TokenCategory is the stream category of tokens: token id lives in
// "token-<id>".
const TokenCategory = "token"

// Token format: "lbk_<id>_<secret>", the id 16 lower-case hex digits (the
// lookup key, not secret), the secret 32 random bytes in unpadded
// base64url. Only SHA-256(secret) is stored.
const (
	tokenPrefix    = "lbk_"
	tokenIDLen     = 16
	tokenSecretLen = 32
	// TokenLen is the length of every token string.
	TokenLen = len(tokenPrefix) + tokenIDLen + 1 + 43
	// bootstrapTokenID is the id of the token Bootstrap creates: fixed, so
	// that nodes racing to bootstrap create one token between them.
	bootstrapTokenID = "0000000000000000"
)

// Limits on tokens.
const (
	// MaxTokenNameLen is the longest token name, in bytes.
	MaxTokenNameLen = 64
	// MaxTokenTTL is the longest lifetime a token may be created with.
	MaxTokenTTL = 10 * 365 * 24 * time.Hour
)

// TokenInfo describes a token, without its secret.
type TokenInfo struct {
	ID, Name, Role string
	CreatedAt      time.Time
	CreatedBy      string
	// ExpiresAt is zero for a token that never expires.
	ExpiresAt time.Time
	Revoked   bool
	RevokedAt time.Time
	RevokedBy string
}

// Principal returns who calls with the token.
func (i TokenInfo) Principal() Principal {
	return Principal{TokenID: i.ID, Name: i.Name, Role: i.Role}
}

// Tokens authenticates the API's bearer tokens. Tokens live in the log
// (TokenCreated and TokenRevoked in streams "token-<id>"); a Tokens keeps
// them in memory and follows the log, so that every control-plane node
// sees tokens created or revoked on any node. Create and Revoke append to
// the log and update the memory at once, so a token works on the node
// that created it as soon as Create returns.
//
// A Tokens is safe for concurrent use. Close stops following the log.
type Tokens struct {
	store  events.Store
	logger *slog.Logger
	now    func() time.Time

	mu   sync.RWMutex
	byID map[string]*tokenEntry

	// createMu serialises Create's name check and append on this node.
	createMu sync.Mutex

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

type tokenEntry struct {
	info    TokenInfo
	hash    [sha256.Size]byte
	version uint64 // stream version of the last event applied
}

// TokenOption configures OpenTokens.
type TokenOption func(*Tokens) error

// WithTokenClock sets the clock that decides expiry and stamps events
// (default time.Now).
func WithTokenClock(now func() time.Time) TokenOption {
	return func(t *Tokens) error {
		if now == nil {
			return errors.New("api: WithTokenClock: nil clock")
		}
		t.now = now
		return nil
	}
}

var tokenRegistry = func() *events.Registry {
	r := new(events.Registry)
	r.Register(&logbookv1.TokenCreated{}, &logbookv1.TokenRevoked{})
	return r
}()

var tokenFilter = events.Filter{Categories: []string{TokenCategory}}

// OpenTokens reads every token from store and returns once it has caught
// up with the log's head (ctx bounds that catch-up); it then follows the
// log until Close. The store must outlive the Tokens.
func OpenTokens(ctx context.Context, store events.Store, logger *slog.Logger, opts ...TokenOption) (*Tokens, error) {
	if store == nil {
		return nil, errors.New("api: OpenTokens: nil store")
	}
	if logger == nil {
		logger = slog.Default()
	}
	t := &Tokens{store: store, logger: logger, now: time.Now, byID: map[string]*tokenEntry{}, done: make(chan struct{})}
	for _, o := range opts {
		if err := o(t); err != nil {
			return nil, err
		}
	}
	head, err := store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("api: open tokens: read head: %w", err)
	}
	for ev, err := range store.ReadAll(ctx, 1, tokenFilter) {
		if err != nil {
			return nil, fmt.Errorf("api: open tokens: read the log: %w", err)
		}
		if ev.Position > head.Position {
			break
		}
		t.apply(ev)
	}
	fctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	go t.follow(fctx, head.Position+1)
	return t, nil
}

// Close stops following the log and waits for it; it is idempotent.
// Authentication keeps working with the tokens known at that point.
func (t *Tokens) Close() error {
	t.closeOnce.Do(func() {
		t.cancel()
		<-t.done
	})
	return nil
}

// follow applies token events from position from on, resubscribing after
// a failure, until ctx ends or the store closes.
func (t *Tokens) follow(ctx context.Context, from uint64) {
	defer close(t.done)
	for {
		for ev, err := range t.store.Subscribe(ctx, from, tokenFilter) {
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, events.ErrClosed) {
					return
				}
				t.logger.Warn("api: following tokens in the log failed; retrying", "position", from, "err", err)
				break
			}
			t.apply(ev)
			from = ev.Position + 1
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// apply folds one token event into memory; events already applied (by
// Create or Revoke on this node) are skipped.
func (t *Tokens) apply(ev events.Event) {
	msg, err := tokenRegistry.Decode(ev)
	if err != nil {
		t.logger.Error("api: skipping undecodable token event", "stream", ev.Stream, "position", ev.Position, "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, id, _ := strings.Cut(ev.Stream, "-")
	e := t.byID[id]
	if e != nil && e.version >= ev.Version {
		return
	}
	switch m := msg.(type) {
	case *logbookv1.TokenCreated:
		if e != nil || len(m.GetSecretSha256()) != sha256.Size {
			t.logger.Error("api: skipping malformed TokenCreated", "stream", ev.Stream, "position", ev.Position)
			return
		}
		e = &tokenEntry{info: TokenInfo{
			ID: id, Name: m.GetName(), Role: m.GetRole(),
			CreatedAt: m.GetCreatedAt().AsTime(), CreatedBy: m.GetCreatedBy(),
		}}
		if m.GetExpiresAt() != nil {
			e.info.ExpiresAt = m.GetExpiresAt().AsTime()
		}
		copy(e.hash[:], m.GetSecretSha256())
		t.byID[id] = e
	case *logbookv1.TokenRevoked:
		if e == nil {
			t.logger.Error("api: skipping TokenRevoked of an unknown token", "stream", ev.Stream, "position", ev.Position)
			return
		}
		e.info.Revoked, e.info.RevokedAt, e.info.RevokedBy = true, m.GetRevokedAt().AsTime(), m.GetRevokedBy()
	}
	e.version = ev.Version
}

// Create creates a token for name with role, valid for ttl (0: never
// expires), on behalf of md.Principal, and returns it with its secret
// token string, which is shown once and never stored.
//
// Errors: ErrInvalidArgument (name, role or ttl), ErrTokenExists (an
// active token has the name), or the store's.
func (t *Tokens) Create(ctx context.Context, name, role string, ttl time.Duration, md events.Metadata) (TokenInfo, string, error) {
	if err := validateTokenName(name); err != nil {
		return TokenInfo{}, "", err
	}
	if !validRole(role) {
		return TokenInfo{}, "", invalidf("role %q: want %s, %s, %s or %s", role, RoleAdmin, RoleOperator, RoleRead, RoleIngest)
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return TokenInfo{}, "", invalidf("ttl %v: want 0 (never expires) up to %v", ttl, MaxTokenTTL)
	}
	id := newTokenID()
	return t.create(ctx, id, name, role, ttl, md)
}

func (t *Tokens) create(ctx context.Context, id, name, role string, ttl time.Duration, md events.Metadata) (TokenInfo, string, error) {
	t.createMu.Lock()
	defer t.createMu.Unlock()
	for _, e := range t.snapshot() {
		if e.Name == name && !e.Revoked {
			return TokenInfo{}, "", &apiError{kind: ErrTokenExists,
				msg: fmt.Sprintf("a token named %q exists (id %s); revoke it or choose another name", name, e.ID)}
		}
	}
	secret := make([]byte, tokenSecretLen)
	rand.Read(secret)
	hash := sha256.Sum256(secret)
	now := t.now()
	created := &logbookv1.TokenCreated{
		Id: id, Name: name, Role: role, SecretSha256: hash[:],
		CreatedBy: md.Principal, CreatedAt: timestamppb.New(now),
	}
	if ttl > 0 {
		created.ExpiresAt = timestamppb.New(now.Add(ttl))
	}
	ev, err := t.appendOne(ctx, id, events.NoStream, created, md, now)
	if err != nil {
		return TokenInfo{}, "", err
	}
	t.apply(ev)
	info, _ := t.Get(id)
	return info, FormatToken(id, secret), nil
}

// appendOne appends msg to the stream of token id and returns the event as
// stored (with its stream, version and position).
func (t *Tokens) appendOne(ctx context.Context, id string, expect events.Expect, msg proto.Message, md events.Metadata, now time.Time) (events.Event, error) {
	ev, err := events.NewEvent(msg, md)
	if err != nil {
		return events.Event{}, err
	}
	ev.Time = now
	stream := TokenCategory + "-" + id
	res, err := t.store.Append(ctx, stream, expect, ev)
	if err != nil {
		return events.Event{}, fmt.Errorf("token %s: %w", id, err)
	}
	ev.Stream, ev.Version, ev.Position = stream, res.LastVersion, res.LastPosition
	return ev, nil
}

// Revoke revokes token id on behalf of md.Principal. Revoking a revoked
// token changes nothing and returns a zero AppendResult. Errors:
// ErrTokenNotFound, or the store's.
func (t *Tokens) Revoke(ctx context.Context, id string, md events.Metadata) (events.AppendResult, error) {
	if _, ok := t.Get(id); !ok {
		if err := validateTokenID(id); err != nil {
			return events.AppendResult{}, err
		}
	}
	now := t.now()
	// The stream holds TokenCreated at version 1 and at most one
	// TokenRevoked at version 2: expecting version 1 both proves the
	// token exists and makes a second revocation a no-op.
	ev, err := t.appendOne(ctx, id, events.Exactly(1),
		&logbookv1.TokenRevoked{Id: id, RevokedBy: md.Principal, RevokedAt: timestamppb.New(now)}, md, now)
	var wrong *events.WrongExpectedVersionError
	switch {
	case errors.As(err, &wrong) && wrong.Actual == 0:
		return events.AppendResult{}, &apiError{kind: ErrTokenNotFound, msg: fmt.Sprintf("no token has id %q (see ListTokens)", id)}
	case errors.As(err, &wrong):
		// Already revoked: nothing appended; the stream's version is the
		// log's, whatever this node has applied yet.
		return events.AppendResult{LastVersion: wrong.Actual}, nil
	case err != nil:
		return events.AppendResult{}, err
	}
	t.apply(ev)
	return events.AppendResult{FirstVersion: ev.Version, LastVersion: ev.Version, FirstPosition: ev.Position, LastPosition: ev.Position}, nil
}

// Get returns the token with id.
func (t *Tokens) Get(id string) (TokenInfo, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.byID[id]
	if !ok {
		return TokenInfo{}, false
	}
	return e.info, true
}

// List returns every token, revoked and expired ones too, oldest first.
func (t *Tokens) List() []TokenInfo {
	out := t.snapshot()
	slices.SortFunc(out, func(a, b TokenInfo) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

func (t *Tokens) snapshot() []TokenInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]TokenInfo, 0, len(t.byID))
	for _, e := range t.byID {
		out = append(out, e.info)
	}
	return out
}

// Authenticate returns the principal of token, or an error wrapping
// ErrUnauthenticated that says why: malformed, unknown, revoked or
// expired. The secret is compared in constant time.
func (t *Tokens) Authenticate(ctx context.Context, token string) (Principal, error) {
	id, secret, err := ParseToken(token)
	if err != nil {
		return Principal{}, &apiError{kind: ErrUnauthenticated, msg: err.Error(), err: err}
	}
	hash := sha256.Sum256(secret)
	t.mu.RLock()
	e, ok := t.byID[id]
	var info TokenInfo
	var match bool
	if ok {
		info, match = e.info, subtle.ConstantTimeCompare(hash[:], e.hash[:]) == 1
	}
	t.mu.RUnlock()
	unauthenticated := func(format string, args ...any) (Principal, error) {
		return Principal{}, &apiError{kind: ErrUnauthenticated, msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case !ok || !match:
		return unauthenticated("unknown token %s%s_...: check the token, or create one with `logbook token create`", tokenPrefix, id)
	case info.Revoked:
		return unauthenticated("token %s (%s) was revoked at %s by %s", id, info.Name, info.RevokedAt.Format(time.RFC3339), info.RevokedBy)
	case !info.ExpiresAt.IsZero() && !t.now().Before(info.ExpiresAt):
		return unauthenticated("token %s (%s) expired at %s", id, info.Name, info.ExpiresAt.Format(time.RFC3339))
	}
	return info.Principal(), nil
}

// Bootstrap creates the first admin token, named name, when the log holds
// no token at all (not even a revoked one), and returns its secret with
// created true. Otherwise it returns "", false, nil. Nodes racing to
// bootstrap create one token between them: the others get created false.
func (t *Tokens) Bootstrap(ctx context.Context, name string) (secret string, created bool, err error) {
	if len(t.snapshot()) > 0 {
		return "", false, nil
	}
	_, secret, err = t.create(ctx, bootstrapTokenID, name, RoleAdmin, 0, events.Metadata{Principal: "bootstrap", CorrelationID: events.NewID().String()})
	if errors.Is(err, events.ErrWrongExpectedVersion) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("api: bootstrap admin token: %w", err)
	}
	return secret, true, nil
}

// Authorize authenticates the bearer token of r (the Authorization header
// "Bearer <token>", or X-Api-Key for clients that cannot set it) and checks
// that its role allows role. Errors wrap ErrUnauthenticated or
// ErrPermissionDenied and are *connect.Error values too, so
// connect.CodeOf tells them apart without importing this package.
func (t *Tokens) Authorize(r *http.Request, role string) (Principal, error) {
	p, err := t.authorize(r.Context(), r.Header, role)
	if err != nil {
		return Principal{}, ConnectError(r.Context(), t.logger, r.URL.Path, err)
	}
	return p, nil
}

// Authorizer returns the Authorize function of the plain HTTP endpoints
// (api/ingest): it authenticates r's token, checks it allows the role
// roleFor names for r, and answers the principal's name, or an error
// wrapping ingest.ErrUnauthenticated (401) or ingest.ErrForbidden (403)
// besides the *connect.Error that says why.
func (t *Tokens) Authorizer(roleFor func(r *http.Request) string) func(r *http.Request) (principal string, err error) {
	return func(r *http.Request) (string, error) {
		p, err := t.Authorize(r, roleFor(r))
		switch {
		case err == nil:
			return p.Name, nil
		case connect.CodeOf(err) == connect.CodeUnauthenticated:
			return "", fmt.Errorf("%w: %w", ingest.ErrUnauthenticated, err)
		case connect.CodeOf(err) == connect.CodePermissionDenied:
			return "", fmt.Errorf("%w: %w", ingest.ErrForbidden, err)
		}
		return "", err
	}
}

func (t *Tokens) authorize(ctx context.Context, h http.Header, role string) (Principal, error) {
	tok, err := bearer(h)
	if err != nil {
		return Principal{}, err
	}
	p, err := t.Authenticate(ctx, tok)
	if err != nil {
		return Principal{}, err
	}
	if !allows(p.Role, role) {
		return Principal{}, &apiError{kind: ErrPermissionDenied,
			msg: fmt.Sprintf("token %s (%s) has role %s; this needs role %s", p.TokenID, p.Name, p.Role, neededRoles(role))}
	}
	return p, nil
}

// bearer returns the token of an Authorization: Bearer header, or of an
// X-Api-Key header.
func bearer(h http.Header) (string, error) {
	auth := h.Get("Authorization")
	if auth == "" {
		if key := h.Get("X-Api-Key"); key != "" {
			return strings.TrimSpace(key), nil
		}
		return "", &apiError{kind: ErrUnauthenticated,
			msg: "no token: send the header \"Authorization: Bearer lbk_...\" (the admin token is in <data>/admin.token)"}
	}
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", &apiError{kind: ErrUnauthenticated, msg: "malformed Authorization header: want \"Bearer lbk_...\""}
	}
	return strings.TrimSpace(tok), nil
}

// allows reports whether a token of role have may do what needs role need.
func allows(have, need string) bool {
	switch have {
	case RoleAdmin:
		return true
	case RoleOperator:
		return need != RoleAdmin
	case RoleRead:
		return need == RoleRead
	case RoleIngest:
		return need == RoleIngest
	}
	return false
}

// neededRoles lists the roles that allow need, for error messages.
func neededRoles(need string) string {
	switch need {
	case RoleAdmin:
		return "admin"
	case RoleOperator:
		return "operator or admin"
	case RoleRead:
		return "read, operator or admin"
	case RoleIngest:
		return "ingest, operator or admin"
	}
	return need
}

func validRole(role string) bool {
	switch role {
	case RoleAdmin, RoleOperator, RoleRead, RoleIngest:
		return true
	}
	return false
}

func validateTokenName(name string) error {
	if name == "" || len(name) > MaxTokenNameLen {
		return invalidf("token name %q: want 1 to %d characters", name, MaxTokenNameLen)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@') {
			return invalidf("token name %q: character %q; allowed are ASCII letters, digits, '-', '_', '.' and '@'", name, c)
		}
	}
	return nil
}

func validateTokenID(id string) error {
	if len(id) != tokenIDLen {
		return invalidf("token id %q: want %d lower-case hex digits", id, tokenIDLen)
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return invalidf("token id %q: want %d lower-case hex digits", id, tokenIDLen)
		}
	}
	return nil
}

func newTokenID() string {
	b := make([]byte, tokenIDLen/2)
	for {
		rand.Read(b)
		if id := hex.EncodeToString(b); id != bootstrapTokenID {
			return id
		}
	}
}

// FormatToken returns the token string of id and secret.
func FormatToken(id string, secret []byte) string {
	return tokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret)
}

// ParseToken splits a token "lbk_<id>_<secret>" into its id and secret.
// The error says what is wrong without echoing the secret.
func ParseToken(token string) (id string, secret []byte, err error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", nil, fmt.Errorf("malformed token: want %q followed by the id and the secret", tokenPrefix)
	}
	if len(token) != TokenLen {
		return "", nil, fmt.Errorf("malformed token: %d characters, want %d", len(token), TokenLen)
	}
	id, enc := rest[:tokenIDLen], rest[tokenIDLen:]
	if validateTokenID(id) != nil || enc[0] != '_' {
		return "", nil, errors.New("malformed token: want lbk_<16 hex digits>_<secret>")
	}
	secret, err = base64.RawURLEncoding.Strict().DecodeString(enc[1:])
	if err != nil || len(secret) != tokenSecretLen {
		return "", nil, fmt.Errorf("malformed token %s%s_...: the secret is not %d bytes of base64url", tokenPrefix, id, tokenSecretLen)
	}
	return id, secret, nil
}
