package bridge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"sync"
	"time"
)

// SecretHash is the SHA-256 of an enrolment token: the token's lookup key
// (an enrolling agent presents only the token). Tokens are 256-bit random
// values, so a plain SHA-256 is enough: there is nothing to brute-force.
type SecretHash [sha256.Size]byte

// HashSecret returns the hash stored for secret.
func HashSecret(secret string) SecretHash { return sha256.Sum256([]byte(secret)) }

// Matches reports in constant time whether secret hashes to h.
func (h SecretHash) Matches(secret string) bool {
	got := HashSecret(secret)
	return subtle.ConstantTimeCompare(got[:], h[:]) == 1
}

// SaltSize is the size of a SaltedHash's salt.
const SaltSize = 16

// SaltedHash is how a unit's NATS password is stored: SHA-256 of a random
// salt followed by the password. The password is a 256-bit random value
// (NewSecret), so a fast hash suffices; the salt makes equal passwords
// (there should be none) and precomputed tables useless.
type SaltedHash struct {
	Salt [SaltSize]byte
	Sum  [sha256.Size]byte
}

// NewSaltedHash hashes secret with a fresh salt from crypto/rand.
func NewSaltedHash(secret string) SaltedHash {
	var h SaltedHash
	_, _ = rand.Read(h.Salt[:]) // never fails (crypto/rand panics on failure)
	h.Sum = saltedSum(h.Salt, secret)
	return h
}

func saltedSum(salt [SaltSize]byte, secret string) [sha256.Size]byte {
	d := sha256.New()
	d.Write(salt[:])
	d.Write([]byte(secret))
	var sum [sha256.Size]byte
	d.Sum(sum[:0])
	return sum
}

// Matches reports in constant time whether secret is the hashed secret.
// The zero SaltedHash matches nothing.
func (h SaltedHash) Matches(secret string) bool {
	if h == (SaltedHash{}) {
		return false
	}
	got := saltedSum(h.Salt, secret)
	return subtle.ConstantTimeCompare(got[:], h.Sum[:]) == 1
}

// NewSecret returns a fresh secret: 32 bytes from crypto/rand in unpadded
// base64url (43 characters).
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on failure)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Credential is what the control plane keeps about an enrolled unit: the
// salted hash of its NATS password and the public half of its identity key.
type Credential struct {
	Unit   string
	Secret SaltedHash
	// PublicKey is the agent's ed25519 identity key from enrolment.
	PublicKey  []byte
	EnrolledAt time.Time
}

// EnrolToken is a one-time enrolment token as stored: its hash, the unit
// it enrols, and its expiry.
type EnrolToken struct {
	Hash      SecretHash
	Unit      string
	ExpiresAt time.Time
}

// CredentialStore keeps unit credentials and enrolment tokens. The embedded
// NATS server's authenticator reads it on every connection, so a change
// takes effect at the next connection, without a restart. Implementations
// are safe for concurrent use; secrets are only ever stored hashed.
type CredentialStore interface {
	// Credential returns unit's credential, or an error wrapping ErrNotFound.
	Credential(ctx context.Context, unitName string) (Credential, error)
	// PutCredential stores c, replacing the unit's previous credential.
	PutCredential(ctx context.Context, c Credential) error
	// DeleteCredential removes unit's credential; a missing one is not an error.
	DeleteCredential(ctx context.Context, unitName string) error

	// PutToken stores an enrolment token.
	PutToken(ctx context.Context, t EnrolToken) error
	// Token returns the token with hash h if it is unused and not expired
	// at now, without using it; else an error wrapping ErrInvalidToken.
	Token(ctx context.Context, h SecretHash, now time.Time) (EnrolToken, error)
	// TakeToken atomically uses the token with hash h: it returns it and
	// makes it unusable, if it is unused, not expired at now and for
	// unitName; else it returns an error wrapping ErrInvalidToken and
	// leaves the token as it was (an expired one may be deleted).
	TakeToken(ctx context.Context, h SecretHash, unitName string, now time.Time) (EnrolToken, error)
}

// MemoryCredentials is an in-memory CredentialStore: for tests and
// single-node development (credentials vanish on restart, so every agent
// must enrol again). A control plane uses LogCredentials.
type MemoryCredentials struct {
	mu     sync.Mutex
	creds  map[string]Credential
	tokens map[SecretHash]EnrolToken
}

var _ CredentialStore = (*MemoryCredentials)(nil)

// NewMemoryCredentials returns an empty MemoryCredentials.
func NewMemoryCredentials() *MemoryCredentials {
	return &MemoryCredentials{creds: map[string]Credential{}, tokens: map[SecretHash]EnrolToken{}}
}

// Credential implements CredentialStore.
func (m *MemoryCredentials) Credential(_ context.Context, unitName string) (Credential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.creds[unitName]
	if !ok {
		return Credential{}, fmt.Errorf("credential of unit %q: %w", unitName, ErrNotFound)
	}
	c.PublicKey = append([]byte(nil), c.PublicKey...)
	return c, nil
}

// PutCredential implements CredentialStore.
func (m *MemoryCredentials) PutCredential(_ context.Context, c Credential) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c.PublicKey = append([]byte(nil), c.PublicKey...)
	m.creds[c.Unit] = c
	return nil
}

// DeleteCredential implements CredentialStore.
func (m *MemoryCredentials) DeleteCredential(_ context.Context, unitName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.creds, unitName)
	return nil
}

// PutToken implements CredentialStore.
func (m *MemoryCredentials) PutToken(_ context.Context, t EnrolToken) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[t.Hash] = t
	return nil
}

// Token implements CredentialStore.
func (m *MemoryCredentials) Token(_ context.Context, h SecretHash, now time.Time) (EnrolToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[h]
	if !ok || !now.Before(t.ExpiresAt) {
		return EnrolToken{}, ErrInvalidToken
	}
	return t, nil
}

// TakeToken implements CredentialStore. Used and expired tokens are deleted.
func (m *MemoryCredentials) TakeToken(_ context.Context, h SecretHash, unitName string, now time.Time) (EnrolToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[h]
	if !ok || t.Unit != unitName {
		return EnrolToken{}, ErrInvalidToken
	}
	delete(m.tokens, h)
	if !now.Before(t.ExpiresAt) {
		return EnrolToken{}, ErrInvalidToken
	}
	return t, nil
}
