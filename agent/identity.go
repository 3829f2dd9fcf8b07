package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Identity is what the agent keeps about itself between starts: its key and
// the credentials and control-plane key it got at enrolment.
type Identity struct {
	Unit string
	// Key is the unit's own ed25519 key; its public half was sent at
	// enrolment.
	Key ed25519.PrivateKey
	// NATS credentials and URLs from the enrolment response.
	User, Password string
	URLs           []string
	// ControlPlaneKey verifies command signatures.
	ControlPlaneKey ed25519.PublicKey
	EnrolledAt      time.Time
}

// enrolmentFile is the on-disk form of the enrolment (identity/enrolment.json).
type enrolmentFile struct {
	Unit            string    `json:"unit"`
	NATSUser        string    `json:"nats_user"`
	NATSPassword    string    `json:"nats_password"`
	NATSURLs        []string  `json:"nats_urls,omitempty"`
	ControlPlaneKey []byte    `json:"control_plane_public_key"`
	ControlPlaneID  string    `json:"control_plane_key_id"`
	EnrolledAt      time.Time `json:"enrolled_at"`
}

func keyPath(dataDir string) string { return filepath.Join(dataDir, "identity", "key.pem") }
func enrolmentPath(dataDir string) string {
	return filepath.Join(dataDir, "identity", "enrolment.json")
}

// loadOrEnrol returns the identity stored in dataDir, enrolling first when
// there is none: it generates (or reuses) the key, sends the enrolment
// request through enroller and stores the response. Without a stored
// enrolment and without a token it returns ErrNoToken.
func loadOrEnrol(ctx context.Context, dataDir, unit, token string, enroller Enroller) (*Identity, error) {
	key, err := loadOrCreateKey(keyPath(dataDir))
	if err != nil {
		return nil, err
	}
	id, err := loadEnrolment(enrolmentPath(dataDir))
	switch {
	case err == nil:
		if id.Unit != unit {
			return nil, fmt.Errorf("%w: %s is enrolled as %q, not %q", ErrUnitMismatch, dataDir, id.Unit, unit)
		}
		id.Key = key
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("%w: first start in %s needs --token", ErrNoToken, dataDir)
	}
	resp, err := enroller.Enrol(ctx, &logbookv1.AgentEnrolRequest{
		Unit:      unit,
		Token:     token,
		PublicKey: key.Public().(ed25519.PublicKey),
	})
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", unit, err)
	}
	cpk := resp.GetControlPlanePublicKey()
	if resp.GetNatsUser() == "" || len(cpk) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: response lacks credentials or a %d-byte control-plane key", ErrEnrolRejected, ed25519.PublicKeySize)
	}
	f := enrolmentFile{
		Unit:            unit,
		NATSUser:        resp.GetNatsUser(),
		NATSPassword:    resp.GetNatsPassword(),
		NATSURLs:        resp.GetNatsUrls(),
		ControlPlaneKey: cpk,
		ControlPlaneID:  logbookv1.KeyID(cpk),
		EnrolledAt:      time.Now().UTC(),
	}
	if err := writeJSONAtomic(enrolmentPath(dataDir), f, 0o600); err != nil {
		return nil, fmt.Errorf("store enrolment: %w", err)
	}
	return &Identity{Unit: unit, Key: key, User: f.NATSUser, Password: f.NATSPassword, URLs: f.NATSURLs,
		ControlPlaneKey: cpk, EnrolledAt: f.EnrolledAt}, nil
}

// readEnrolmentFile reads the stored enrolment at path as it is on disk.
func readEnrolmentFile(path string) (enrolmentFile, error) {
	var f enrolmentFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, &IdentityError{Path: path, Reason: err.Error()}
	}
	return f, nil
}

func loadEnrolment(path string) (*Identity, error) {
	f, err := readEnrolmentFile(path)
	if err != nil {
		return nil, err
	}
	switch {
	case f.Unit == "":
		return nil, &IdentityError{Path: path, Reason: "no unit"}
	case f.NATSUser == "":
		return nil, &IdentityError{Path: path, Reason: "no NATS user"}
	case len(f.ControlPlaneKey) != ed25519.PublicKeySize:
		return nil, &IdentityError{Path: path, Reason: fmt.Sprintf("control-plane key is %d bytes, want %d", len(f.ControlPlaneKey), ed25519.PublicKeySize)}
	}
	return &Identity{Unit: f.Unit, User: f.NATSUser, Password: f.NATSPassword, URLs: f.NATSURLs,
		ControlPlaneKey: ed25519.PublicKey(f.ControlPlaneKey), EnrolledAt: f.EnrolledAt}, nil
}

// loadOrCreateKey reads the PKCS#8 PEM ed25519 key at path, or generates and
// stores one (mode 0600) when there is none.
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("store identity key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, &IdentityError{Path: path, Reason: "not a PEM private key"}
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, &IdentityError{Path: path, Reason: err.Error()}
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, &IdentityError{Path: path, Reason: fmt.Sprintf("%T is not an ed25519 key", k)}
	}
	return key, nil
}

// maxServerURLs bounds the server URLs kept in the enrolment.
const maxServerURLs = 32

// addServerURLs adds the URLs of learned not yet in the stored enrolment
// at path (after those it has, in the order learned), and returns the
// enrolment's URLs, changed or not. An enrolment that named no URLs (the
// agent used its configured servers) starts from configured.
func addServerURLs(path string, configured, learned []string) ([]string, error) {
	f, err := readEnrolmentFile(path)
	if err != nil {
		return nil, err
	}
	urls := slices.Clone(f.NATSURLs)
	if len(urls) == 0 {
		learned = append(slices.Clone(configured), learned...)
	}
	for _, u := range learned {
		if len(urls) >= maxServerURLs {
			break
		}
		if !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	if len(urls) == len(f.NATSURLs) {
		return urls, nil
	}
	f.NATSURLs = urls
	if err := writeJSONAtomic(path, f, 0o600); err != nil {
		return nil, fmt.Errorf("store enrolment: %w", err)
	}
	return urls, nil
}
