// Package channel is the Channel aggregate: one release channel per stream
// "channel-<name>" (e.g. "channel-stable"). A channel maps to its current
// release version; units follow the channel. It also carries feature flags.
//
// Commands and the events they produce (messages in proto/logbook/v1):
//
//	CreateChannel           -> ChannelCreated          refused: ErrAlreadyCreated
//	PromoteRelease          -> ChannelReleasePromoted  refused: ErrUnknownRelease, ErrYankedRelease,
//	                                                   ErrMissingFacts, ErrFactsMismatch, ErrInvalidCommand
//	RollbackChannel         -> ChannelRolledBack       refused: ErrNothingToRollBack, ErrYankedRelease,
//	                                                   ErrUnknownRelease, ErrMissingFacts, ErrFactsMismatch
//	SetChannelFeatureFlag   -> ChannelFeatureFlagSet   refused: ErrInvalidFlag
//	UnsetChannelFeatureFlag -> ChannelFeatureFlagUnset refused: ErrFlagNotSet, ErrInvalidFlag
//
// All but CreateChannel are refused with ErrNotCreated before creation; any
// command with ErrNameMismatch, ErrInvalidName or ErrUnknownCommand. Errors
// wrap these sentinels and name the channel. Promoting the current release
// again, and setting a flag to the value it has, are idempotent: no event, no
// error (a retried request does not fail or add noise to the log).
//
// # Facts in commands
//
// Decide is pure, so it cannot ask a release entity whether a release exists
// or is yanked. PromoteRelease.release and RollbackChannel.target carry
// ChannelReleaseFacts that the API layer must fill from the release entity's
// state just before sending: version (the release the command is about),
// published (status is PUBLISHED or YANKED) and yanked (status is YANKED).
// For a rollback the release is RollbackTarget(state) of this channel. Decide
// fails closed: missing facts are ErrMissingFacts, facts about another version
// (a stale read) ErrFactsMismatch. Facts can go stale between the read and
// the append (a yank racing a promotion); the rollout and the agent re-check
// the release before installing it.
//
// # Rollback and history
//
// Promotions push the previous release on a rollback stack; RollbackChannel
// pops it, so repeated rollbacks walk back through earlier releases (undo, not
// toggle) until ErrNothingToRollBack. Rolling back to a release yanked since
// is refused; promote another release instead. The state keeps the newest
// MaxRollbackDepth stack entries and MaxHistory changes; the full history is
// the stream itself.
//
// # Example
//
//	s := channel.New("stable") // state folded from the channel's stream
//	facts := &logbookv1.ChannelReleaseFacts{Version: "2026.11.3", Published: true}
//	evs, err := channel.Decide(s, &logbookv1.PromoteRelease{
//		Version: "2026.11.3", Reason: "soak passed", Release: facts,
//	}, actors.Env{Now: now, Principal: "alice"})
//	if errors.Is(err, channel.ErrYankedRelease) { ... }
//	for _, e := range evs {
//		s = channel.Evolve(s, e)
//	}
//
// The entity host runs the package through Kind.
package channel
