// Package release is the Release aggregate: one immutable release per
// stream "release-<version>" (e.g. "release-2026.11.3").
//
// A release is boot-meta's "a githash is all you need" made an entity: it
// records the git commit of every repository it was built from, the signed
// binary it ships per platform (URL, sha256, size, ed25519 signature) and the
// manifest of processes it runs. It is published once and never modified;
// it may be yanked (withdrawn) once, with a reason. Channels map to release
// versions, and since a version's content never changes, a version names its
// githashes forever.
//
// Commands and the events they produce (messages in proto/logbook/v1):
//
//	PublishRelease -> ReleasePublished   refused: ErrAlreadyPublished, ErrInvalid*, ErrBadSignature
//	YankRelease    -> ReleaseYanked      refused: ErrNotPublished, ErrYanked, ErrInvalidCommand
//
// Every refusal wraps one of the package's sentinel errors and names the
// release; ErrVersionMismatch, ErrInvalidVersion and ErrUnknownCommand can
// come from any command.
//
// # Signatures
//
// Each artifact's signature is ed25519 over its canonical descriptor (see
// SigningMessage), which binds the sha256 and size to the release version and
// platform, so an old signed binary cannot be republished as a new version.
// Decide verifies every signature when PublishRelease.signer_public_key is
// set. The API layer must set that key from the control plane's trusted
// publisher keys, never from the client's request; without it signatures are
// only checked to be 64 bytes, and agents must verify after download anyway.
//
// # Example
//
//	s := release.New("2026.11.3")
//	evs, err := release.Decide(s, &logbookv1.PublishRelease{
//		Repos:           map[string]string{"github.com/logbook-fleet/logbook": commit},
//		Artifacts:       []*logbookv1.ReleaseArtifact{art}, // art.Signature = release.Sign(key, "2026.11.3", art)
//		SignerPublicKey: trustedKey,
//	}, actors.Env{Now: now, Principal: "ci"})
//	if err != nil { ... } // errors.Is(err, release.ErrBadSignature), ...
//	for _, e := range evs {
//		s = release.Evolve(s, e)
//	}
//
// The entity host runs the package through Kind.
package release
