package release

import (
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Category is the stream category of releases: "release-<version>".
const Category = "release"

// Kind is the Release aggregate for the entity host.
var Kind = actors.Define(Category, New, Decide, Evolve,
	&logbookv1.ReleasePublished{},
	&logbookv1.ReleaseYanked{},
)

// Stream returns the stream name of release version.
func Stream(version string) string { return Category + "-" + version }

// New returns the state of release version before any event: not published.
func New(version string) *logbookv1.ReleaseState {
	return &logbookv1.ReleaseState{Version: version}
}

// Decide handles *PublishRelease and *YankRelease. It does not modify s and
// does no I/O; the publication time and publisher come from env. Errors wrap
// the package's sentinels and name the release.
func Decide(s *logbookv1.ReleaseState, cmd proto.Message, env actors.Env) ([]proto.Message, error) {
	switch c := cmd.(type) {
	case *logbookv1.PublishRelease:
		return decidePublish(s, c, env)
	case *logbookv1.YankRelease:
		return decideYank(s, c, env)
	default:
		return nil, fmt.Errorf("release %s: %w %T", s.GetVersion(), ErrUnknownCommand, cmd)
	}
}

// target checks that a command addressed to version reaches entity s.
func target(s *logbookv1.ReleaseState, version string) error {
	if err := ValidateVersion(s.GetVersion()); err != nil {
		return fmt.Errorf("release entity: %w", err)
	}
	if version != "" && version != s.GetVersion() {
		return fmt.Errorf("release %s: %w: command names %q", s.GetVersion(), ErrVersionMismatch, version)
	}
	return nil
}

func decidePublish(s *logbookv1.ReleaseState, c *logbookv1.PublishRelease, env actors.Env) ([]proto.Message, error) {
	if err := target(s, c.GetVersion()); err != nil {
		return nil, err
	}
	v := s.GetVersion()
	if s.GetStatus() != logbookv1.ReleaseStatus_RELEASE_STATUS_UNSPECIFIED {
		return nil, fmt.Errorf("release %s: %w at %s by %q (status %v); publish a new version instead",
			v, ErrAlreadyPublished, s.GetPublishedAt().AsTime().Format("2006-01-02T15:04:05Z07:00"), s.GetPublishedBy(), s.GetStatus())
	}
	if err := validatePublish(v, c); err != nil {
		return nil, fmt.Errorf("release %s: %w", v, err)
	}
	return []proto.Message{&logbookv1.ReleasePublished{
		Version:         v,
		Repos:           maps.Clone(c.GetRepos()),
		Artifacts:       cloneAll(c.GetArtifacts()),
		Manifest:        cloneAll(c.GetManifest()),
		SignerPublicKey: slices.Clone(c.GetSignerPublicKey()),
		PublishedAt:     timestamppb.New(env.Now),
		PublishedBy:     env.Principal,
	}}, nil
}

// validatePublish checks every part of a publication, in a fixed order so
// that the first problem reported is deterministic.
func validatePublish(version string, c *logbookv1.PublishRelease) error {
	repos := c.GetRepos()
	if len(repos) == 0 {
		return fmt.Errorf("%w: no repositories; a release names the git commit of every repository it was built from", ErrInvalidRepo)
	}
	if len(repos) > MaxRepos {
		return fmt.Errorf("%w: %d repositories, at most %d allowed", ErrInvalidRepo, len(repos), MaxRepos)
	}
	for _, name := range slices.Sorted(maps.Keys(repos)) {
		if err := ValidateRepoName(name); err != nil {
			return err
		}
		if err := ValidateGitHash(repos[name]); err != nil {
			return fmt.Errorf("repository %s: %w", name, err)
		}
	}

	arts := c.GetArtifacts()
	if len(arts) == 0 {
		return fmt.Errorf("%w: no artifacts", ErrInvalidArtifact)
	}
	if len(arts) > MaxArtifacts {
		return fmt.Errorf("%w: %d artifacts, at most %d allowed", ErrInvalidArtifact, len(arts), MaxArtifacts)
	}
	platforms := make(map[string]int, len(arts))
	for i, a := range arts {
		if err := validateArtifact(i, a); err != nil {
			return err
		}
		if j, dup := platforms[a.GetPlatform()]; dup {
			return fmt.Errorf("%w: artifacts %d and %d are both for %s", ErrInvalidArtifact, j, i, a.GetPlatform())
		}
		platforms[a.GetPlatform()] = i
	}

	procs := c.GetManifest()
	if len(procs) > MaxProcesses {
		return fmt.Errorf("%w: %d processes, at most %d allowed", ErrInvalidManifest, len(procs), MaxProcesses)
	}
	seen := make(map[string]int, len(procs))
	for i, p := range procs {
		if err := validateProcess(i, p); err != nil {
			return err
		}
		key := p.GetMethod() + "." + p.GetDomain()
		if j, dup := seen[key]; dup {
			return fmt.Errorf("%w: processes %d and %d are both %s", ErrInvalidManifest, j, i, key)
		}
		seen[key] = i
	}

	if pub := c.GetSignerPublicKey(); len(pub) > 0 {
		for _, a := range arts {
			if err := VerifyArtifact(ed25519.PublicKey(pub), version, a); err != nil {
				return err
			}
		}
	}
	return nil
}

func decideYank(s *logbookv1.ReleaseState, c *logbookv1.YankRelease, env actors.Env) ([]proto.Message, error) {
	if err := target(s, c.GetVersion()); err != nil {
		return nil, err
	}
	v := s.GetVersion()
	switch s.GetStatus() {
	case logbookv1.ReleaseStatus_RELEASE_STATUS_UNSPECIFIED:
		return nil, fmt.Errorf("release %s: cannot yank: %w", v, ErrNotPublished)
	case logbookv1.ReleaseStatus_RELEASE_STATUS_YANKED:
		return nil, fmt.Errorf("release %s: cannot yank again: %w by %q (%s)", v, ErrYanked, s.GetYankedBy(), s.GetYankReason())
	}
	reason := c.GetReason()
	if strings.TrimSpace(reason) == "" {
		return nil, fmt.Errorf("release %s: %w: yank needs a reason", v, ErrInvalidCommand)
	}
	if len(reason) > MaxReasonLen {
		return nil, fmt.Errorf("release %s: %w: reason longer than %d bytes", v, ErrInvalidCommand, MaxReasonLen)
	}
	return []proto.Message{&logbookv1.ReleaseYanked{
		Version:  v,
		Reason:   reason,
		YankedAt: timestamppb.New(env.Now),
		YankedBy: env.Principal,
	}}, nil
}

// Evolve applies one event to s in place and returns it. State never aliases
// the event. Events of other types leave s unchanged.
func Evolve(s *logbookv1.ReleaseState, event proto.Message) *logbookv1.ReleaseState {
	switch e := event.(type) {
	case *logbookv1.ReleasePublished:
		if s.Version == "" {
			s.Version = e.GetVersion()
		}
		s.Status = logbookv1.ReleaseStatus_RELEASE_STATUS_PUBLISHED
		s.Repos = maps.Clone(e.GetRepos())
		s.Artifacts = cloneAll(e.GetArtifacts())
		s.Manifest = cloneAll(e.GetManifest())
		s.SignerPublicKey = slices.Clone(e.GetSignerPublicKey())
		s.PublishedAt = proto.CloneOf(e.GetPublishedAt())
		s.PublishedBy = e.GetPublishedBy()
	case *logbookv1.ReleaseYanked:
		s.Status = logbookv1.ReleaseStatus_RELEASE_STATUS_YANKED
		s.YankedAt = proto.CloneOf(e.GetYankedAt())
		s.YankedBy = e.GetYankedBy()
		s.YankReason = e.GetReason()
	}
	return s
}

func cloneAll[M proto.Message](ms []M) []M {
	if ms == nil {
		return nil
	}
	out := make([]M, len(ms))
	for i, m := range ms {
		out[i] = proto.CloneOf(m)
	}
	return out
}
