package bridge

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors/unit"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Enroller turns one-time enrolment tokens into unit credentials.
//
// The flow: an operator (through the API) calls IssueToken for a unit and
// hands the token to whoever installs the agent. The agent generates its
// ed25519 identity key, connects to NATS as EnrolUser with the token as
// password and inbox prefix InboxPrefix(unit), and sends an
// AgentEnrolRequest to EnrolSubject. Enrol checks and uses up the token,
// stores the unit's public key and the hash of a fresh NATS password, and
// answers with that password, the NATS URLs and the control plane's
// command-signing public key. Enrolling again (with a new token) replaces
// the unit's credential.
//
// An Enroller is safe for concurrent use.
type Enroller struct {
	creds   CredentialStore
	signing ed25519.PublicKey
	urls    []string
	now     func() time.Time
	onEnrol func(unitName string)
}

// EnrollerOption configures NewEnroller.
type EnrollerOption func(*Enroller) error

// WithEnrollerClock sets the clock for token expiry (default time.Now).
func WithEnrollerClock(now func() time.Time) EnrollerOption {
	return func(e *Enroller) error {
		if now == nil {
			return errors.New("bridge: WithEnrollerClock: nil clock")
		}
		e.now = now
		return nil
	}
}

// WithOnEnrol sets a function called after a unit enrolled, e.g. to Kick
// connections made with its previous credential.
func WithOnEnrol(f func(unitName string)) EnrollerOption {
	return func(e *Enroller) error {
		e.onEnrol = f
		return nil
	}
}

// NewEnroller returns an Enroller that stores into creds and tells agents
// the NATS urls and the control plane's command-signing key.
func NewEnroller(creds CredentialStore, signing ed25519.PublicKey, urls []string, opts ...EnrollerOption) (*Enroller, error) {
	var errs []error
	if creds == nil {
		errs = append(errs, errors.New("nil credential store"))
	}
	if len(signing) != ed25519.PublicKeySize {
		errs = append(errs, fmt.Errorf("signing key is %d bytes, want %d", len(signing), ed25519.PublicKeySize))
	}
	e := &Enroller{creds: creds, signing: signing, urls: append([]string(nil), urls...), now: time.Now}
	for _, o := range opts {
		if err := o(e); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bridge: NewEnroller: %w", err)
	}
	return e, nil
}

// IssueToken returns a new one-time enrolment token for unitName, valid for
// ttl. Only its hash is stored.
func (e *Enroller) IssueToken(ctx context.Context, unitName string, ttl time.Duration) (string, error) {
	if err := unit.ValidateName(unitName); err != nil {
		return "", fmt.Errorf("bridge: issue enrolment token: %w", err)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("bridge: issue enrolment token: ttl %v must be positive", ttl)
	}
	tok := NewSecret()
	if err := e.creds.PutToken(ctx, EnrolToken{Hash: HashSecret(tok), Unit: unitName, ExpiresAt: e.now().Add(ttl)}); err != nil {
		return "", fmt.Errorf("bridge: issue enrolment token for %s: %w", unitName, err)
	}
	return tok, nil
}

// Enrol checks req and, when its token is valid for its unit, uses the
// token up and returns fresh credentials. Errors wrap ErrInvalidEnrolment
// or ErrInvalidToken (the caller may show them to the agent), or are the
// credential store's.
func (e *Enroller) Enrol(ctx context.Context, req *logbookv1.AgentEnrolRequest) (*logbookv1.AgentEnrolResponse, error) {
	u := req.GetUnit()
	if err := unit.ValidateName(u); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEnrolment, err)
	}
	if n := len(req.GetPublicKey()); n != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d (ed25519)", ErrInvalidEnrolment, n, ed25519.PublicKeySize)
	}
	now := e.now()
	if _, err := e.creds.TakeToken(ctx, HashSecret(req.GetToken()), u, now); err != nil {
		return nil, fmt.Errorf("enrol %s: %w", u, err)
	}
	secret := NewSecret()
	cred := Credential{Unit: u, Secret: NewSaltedHash(secret), PublicKey: append([]byte(nil), req.GetPublicKey()...), EnrolledAt: now}
	if err := e.creds.PutCredential(ctx, cred); err != nil {
		return nil, fmt.Errorf("enrol %s: store credential: %w", u, err)
	}
	if e.onEnrol != nil {
		e.onEnrol(u)
	}
	return &logbookv1.AgentEnrolResponse{
		NatsUser:              u,
		NatsPassword:          secret,
		NatsUrls:              append([]string(nil), e.urls...),
		ControlPlanePublicKey: append([]byte(nil), e.signing...),
	}, nil
}

// serveEnrolment answers AgentEnrolRequests on EnrolSubject (queue group
// QueueGroup) until the subscription is drained. A refused enrolment gets
// an AgentEnrolResponse with only error set.
func serveEnrolment(nc *nats.Conn, e *Enroller, group string, logger *slog.Logger, timeout time.Duration) (*nats.Subscription, error) {
	return nc.QueueSubscribe(EnrolSubject, group, func(m *nats.Msg) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req := new(logbookv1.AgentEnrolRequest)
		var resp *logbookv1.AgentEnrolResponse
		err := proto.Unmarshal(m.Data, req)
		switch {
		case err != nil:
			err = fmt.Errorf("%w: %v", ErrInvalidEnrolment, err)
		case !strings.HasPrefix(m.Reply, InboxPrefix(req.GetUnit())+"."):
			// Credentials go only to the unit's own inbox, which only the
			// holder of the unit's token (or the unit) can read.
			err = fmt.Errorf("%w: reply subject %.80q is not below the unit's inbox prefix %q", ErrInvalidEnrolment, m.Reply, InboxPrefix(req.GetUnit()))
		default:
			resp, err = e.Enrol(ctx, req)
		}
		if err != nil {
			logger.Warn("bridge: enrolment refused", "unit", req.GetUnit(), "err", err)
			msg := "enrolment refused"
			switch {
			case errors.Is(err, ErrInvalidToken):
				msg = ErrInvalidToken.Error()
			case errors.Is(err, ErrInvalidEnrolment):
				msg = err.Error()
			}
			resp = &logbookv1.AgentEnrolResponse{Error: msg}
		} else {
			logger.Info("bridge: unit enrolled", "unit", req.GetUnit())
		}
		if m.Reply == "" {
			return
		}
		data, _ := proto.Marshal(resp)
		_ = m.Respond(data)
	})
}
