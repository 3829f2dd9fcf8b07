package release

import (
	"crypto/ed25519"
	"fmt"
	"strconv"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// SigningMessage returns the bytes an artifact's ed25519 signature covers:
// its canonical descriptor, the UTF-8 text
//
//	logbook release artifact v1
//	version=<version>
//	platform=<platform>
//	sha256=<64 lowercase hex digits>
//	size=<decimal bytes>
//
// with each line ending in '\n'. Signing the descriptor rather than the bare
// digest binds the binary to its release and platform, so a validly signed old
// binary cannot be republished under a new version (a downgrade). The URL is
// not covered: it says where the bytes are, and the sha256 says what they are.
// All fields are validated first (no field may contain '\n'), so the text is
// unambiguous. Publishers sign it, and agents verify it after download with
// the same function.
func SigningMessage(version string, a *logbookv1.ReleaseArtifact) []byte {
	b := make([]byte, 0, 160+len(version))
	b = append(b, "logbook release artifact v1\nversion="...)
	b = append(b, version...)
	b = append(b, "\nplatform="...)
	b = append(b, a.GetPlatform()...)
	b = append(b, "\nsha256="...)
	b = append(b, a.GetSha256()...)
	b = append(b, "\nsize="...)
	b = strconv.AppendUint(b, a.GetSize(), 10)
	b = append(b, '\n')
	return b
}

// Sign returns a's descriptor signed with key: a convenience for publishers
// and tests. It does not modify a.
func Sign(key ed25519.PrivateKey, version string, a *logbookv1.ReleaseArtifact) []byte {
	return ed25519.Sign(key, SigningMessage(version, a))
}

// VerifyArtifact checks a's signature against the signer's public key. The
// error wraps ErrBadSignature. It is pure, so Decide may call it.
func VerifyArtifact(pub ed25519.PublicKey, version string, a *logbookv1.ReleaseArtifact) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: signer public key is %d bytes, want %d", ErrBadSignature, len(pub), ed25519.PublicKeySize)
	}
	if !ed25519.Verify(pub, SigningMessage(version, a), a.GetSignature()) {
		return fmt.Errorf("%w: artifact %s of release %s does not verify against the signer's key", ErrBadSignature, a.GetPlatform(), version)
	}
	return nil
}
