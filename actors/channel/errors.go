package channel

import "errors"

// Errors returned by Decide and the validators. Decide wraps them with the
// channel name and what exactly is wrong; test with errors.Is.
var (
	// ErrInvalidName: a channel name is empty, too long or has a character
	// outside the allowed set (see ValidateName).
	ErrInvalidName = errors.New("invalid channel name")
	// ErrNameMismatch: a command names a channel other than the entity's.
	ErrNameMismatch = errors.New("command is for another channel")
	// ErrNotCreated: the channel does not exist yet.
	ErrNotCreated = errors.New("channel not created")
	// ErrAlreadyCreated: CreateChannel for a channel that exists.
	ErrAlreadyCreated = errors.New("channel already created")
	// ErrInvalidCommand: a command lacks a required field (a reason) or has
	// a malformed one (a release version; then release.ErrInvalidVersion is
	// wrapped too).
	ErrInvalidCommand = errors.New("invalid channel command")
	// ErrUnknownCommand: Decide was given a message that is not a channel command.
	ErrUnknownCommand = errors.New("unknown channel command")
	// ErrMissingFacts: a command that needs facts about a release carries
	// none. The API layer must fill them; Decide fails closed.
	ErrMissingFacts = errors.New("command carries no release facts")
	// ErrFactsMismatch: the release facts are about another version than the
	// one the command promotes or rolls back to (a stale read or a bug in
	// the caller): read the release named in the error and retry.
	ErrFactsMismatch = errors.New("release facts are about another version")
	// ErrUnknownRelease: the release to promote or roll back to is not published.
	ErrUnknownRelease = errors.New("unknown release")
	// ErrYankedRelease: the release to promote or roll back to is yanked.
	ErrYankedRelease = errors.New("release is yanked")
	// ErrNothingToRollBack: RollbackChannel with no earlier release
	// remembered (none promoted before, all rolled back already, or older
	// than MaxRollbackDepth changes).
	ErrNothingToRollBack = errors.New("nothing to roll back to")
	// ErrInvalidFlag: a feature flag key or value is malformed, or the
	// channel has MaxFlags flags already.
	ErrInvalidFlag = errors.New("invalid feature flag")
	// ErrFlagNotSet: UnsetChannelFeatureFlag for a flag that is not set.
	ErrFlagNotSet = errors.New("feature flag not set")
)
