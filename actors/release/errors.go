package release

import "errors"

// Errors returned by Decide and the validators. Decide wraps them with the
// release version and what exactly is wrong; test with errors.Is. An error
// about a part of a command may wrap two of them, e.g. ErrInvalidArtifact and
// ErrInvalidPlatform.
var (
	// ErrInvalidVersion: a version is empty, too long or has a character
	// outside the allowed set (see ValidateVersion).
	ErrInvalidVersion = errors.New("invalid release version")
	// ErrVersionMismatch: a command names a version other than the entity's.
	ErrVersionMismatch = errors.New("command is for another release")
	// ErrInvalidRepo: a repository name is malformed or the repository list
	// is empty or too long.
	ErrInvalidRepo = errors.New("invalid repository")
	// ErrInvalidGitHash: a git commit is not 40 or 64 lowercase hex digits.
	ErrInvalidGitHash = errors.New("invalid git hash")
	// ErrInvalidPlatform: a platform is not "os/arch" or "os/arch/variant".
	ErrInvalidPlatform = errors.New("invalid platform")
	// ErrInvalidArtifact: an artifact has a bad URL, sha256, size or
	// signature length, or its platform appears twice, or there is none.
	ErrInvalidArtifact = errors.New("invalid artifact")
	// ErrInvalidManifest: a manifest process is malformed or appears twice.
	ErrInvalidManifest = errors.New("invalid manifest")
	// ErrBadSignature: an artifact signature does not verify against the
	// signer's public key, or the key is malformed.
	ErrBadSignature = errors.New("bad artifact signature")
	// ErrInvalidCommand: a command lacks a required field (e.g. a yank reason).
	ErrInvalidCommand = errors.New("invalid release command")
	// ErrUnknownCommand: Decide was given a message that is not a release command.
	ErrUnknownCommand = errors.New("unknown release command")
	// ErrAlreadyPublished: PublishRelease for a release that exists
	// (published or yanked). Releases are immutable: publish a new version.
	ErrAlreadyPublished = errors.New("release already published")
	// ErrNotPublished: a command needs a published release and there is none.
	ErrNotPublished = errors.New("release not published")
	// ErrYanked: the release is yanked (YankRelease on a yanked release).
	ErrYanked = errors.New("release yanked")
)
