package logbookv1

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// commandSigningDomain separates command signatures from any other use of
// the control plane's key.
const commandSigningDomain = "logbook.v1.EdgeCommand\x00"

// SigningBytes returns the bytes the control plane signs for c: a domain
// separator, then unit, command id, method, domain, each argument (after
// their count), payload, each as a uvarint length and its bytes, and the
// deadline as seconds and nanoseconds (big-endian 64-bit). Both sides build it
// with this function, so the encoding never depends on protobuf's.
func (c *EdgeCommand) SigningBytes() []byte {
	b := []byte(commandSigningDomain)
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(c.GetUnit())
	str(c.GetCommandId())
	str(c.GetMethod())
	str(c.GetDomain())
	b = binary.AppendUvarint(b, uint64(len(c.GetArgs())))
	for _, a := range c.GetArgs() {
		str(a)
	}
	str(string(c.GetPayload()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.GetDeadline().GetSeconds()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.GetDeadline().GetNanos()))
	return b
}

// Sign sets c's key id and signature with the control plane's key.
func (c *EdgeCommand) Sign(key ed25519.PrivateKey) {
	c.KeyId = KeyID(key.Public().(ed25519.PublicKey))
	c.Signature = ed25519.Sign(key, c.SigningBytes())
}

// VerifySignature reports whether c carries a valid signature by pub.
func (c *EdgeCommand) VerifySignature(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && len(c.GetSignature()) == ed25519.SignatureSize &&
		c.GetKeyId() == KeyID(pub) && ed25519.Verify(pub, c.SigningBytes(), c.GetSignature())
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}
