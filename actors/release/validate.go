package release

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Limits on what a release may carry, so that a ReleasePublished event stays
// far below the log's per-event limit.
const (
	// MaxVersionLen is the longest version, in bytes.
	MaxVersionLen = 128
	// MaxRepoNameLen is the longest repository name, in bytes.
	MaxRepoNameLen = 200
	// MaxRepos is the most repositories a release may name.
	MaxRepos = 256
	// MaxArtifacts is the most artifacts (platforms) a release may ship.
	MaxArtifacts = 64
	// MaxURLLen is the longest artifact URL, in bytes.
	MaxURLLen = 2048
	// MaxProcesses is the most processes a manifest may list.
	MaxProcesses = 256
	// MaxProcessArgs is the most arguments of one manifest process.
	MaxProcessArgs = 256
	// MaxCommandLen is the longest command or argument, in bytes.
	MaxCommandLen = 4096
	// MaxNameLen is the longest manifest method or domain, in bytes.
	MaxNameLen = 64
	// MaxReasonLen is the longest yank reason, in bytes.
	MaxReasonLen = 1024
)

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isLowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// ValidateVersion checks a release version: 1 to MaxVersionLen ASCII
// letters, digits, '.', '_', '-' and '+', starting with a letter or digit,
// e.g. "2026.11.3" or "v1.2.0-rc.1+build.7". The set is deliberately narrower
// than a stream id: versions also appear in URLs, file names of the git
// mirror and NATS subjects, so there are no spaces, control characters,
// wildcards ('*', '>') or slashes. Versions are case-sensitive. The error
// wraps ErrInvalidVersion.
func ValidateVersion(v string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidVersion, v, why) }
	switch {
	case v == "":
		return bad("empty")
	case len(v) > MaxVersionLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxVersionLen))
	case !isAlnum(v[0]):
		return bad("must start with a letter or digit")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' && c != '+' {
			return bad(fmt.Sprintf("character %q at byte %d; allowed are letters, digits, '.', '_', '-' and '+'", c, i))
		}
	}
	return nil
}

// ValidateRepoName checks a repository name such as "logbook" or
// "github.com/logbook-fleet/logbook": 1 to MaxRepoNameLen bytes of
// '/'-separated segments, each non-empty, starting with a letter or digit and
// made of ASCII letters, digits, '.', '_' and '-' (so no "..", "//", spaces or
// wildcards). The error wraps ErrInvalidRepo.
func ValidateRepoName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w name %q: %s", ErrInvalidRepo, name, why) }
	if name == "" {
		return bad("empty")
	}
	if len(name) > MaxRepoNameLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxRepoNameLen))
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" {
			return bad("empty path segment")
		}
		if !isAlnum(seg[0]) {
			return bad(fmt.Sprintf("segment %q must start with a letter or digit", seg))
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return bad(fmt.Sprintf("character %q; allowed are letters, digits, '.', '_', '-' and '/'", c))
			}
		}
	}
	return nil
}

// ValidateGitHash checks a git commit id: 40 (SHA-1) or 64 (SHA-256 object
// format) lowercase hex digits, as `git rev-parse HEAD` prints it. The error
// wraps ErrInvalidGitHash.
func ValidateGitHash(h string) error {
	if len(h) != 40 && len(h) != 64 {
		return fmt.Errorf("%w %q: %d characters, want 40 or 64 hex digits", ErrInvalidGitHash, h, len(h))
	}
	if !allLowerHex(h) {
		return fmt.Errorf("%w %q: want lowercase hex digits only", ErrInvalidGitHash, h)
	}
	return nil
}

func allLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

// ValidatePlatform checks a platform "os/arch" or "os/arch/variant", each
// part 1-32 characters of lowercase letters, digits and '_', e.g.
// "linux/arm64", "linux/arm/v7", "windows/386". The error wraps
// ErrInvalidPlatform.
func ValidatePlatform(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidPlatform, p, why) }
	parts := strings.Split(p, "/")
	if len(parts) != 2 && len(parts) != 3 {
		return bad(`want "os/arch" or "os/arch/variant"`)
	}
	for _, part := range parts {
		if part == "" || len(part) > 32 {
			return bad("each part must be 1-32 characters")
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return bad(fmt.Sprintf("character %q; allowed are lowercase letters, digits and '_'", c))
			}
		}
	}
	return nil
}

// ValidateArtifactURL checks where an artifact is stored: an absolute,
// hierarchical URL of at most MaxURLLen bytes with a scheme and a host or
// path (https://, s3://bucket/key, file:///path, ...), no whitespace or
// control characters, and no user info: events are immutable and replicated,
// so credentials must never be in them. The error wraps ErrInvalidArtifact.
func ValidateArtifactURL(raw string) error {
	bad := func(why string) error { return fmt.Errorf("%w: url %q: %s", ErrInvalidArtifact, raw, why) }
	if raw == "" {
		return bad("empty")
	}
	if len(raw) > MaxURLLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxURLLen))
	}
	if !utf8.ValidString(raw) {
		return bad("not valid UTF-8")
	}
	for _, r := range raw {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return bad(fmt.Sprintf("contains whitespace or control character %q", r))
		}
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return bad(err.Error())
	case u.Scheme == "":
		return bad("not absolute: no scheme")
	case u.Opaque != "":
		return bad("not hierarchical (want scheme://...)")
	case u.User != nil:
		return bad("must not carry user info or credentials")
	case u.Host == "" && u.Path == "":
		return bad("no host or path")
	}
	return nil
}

// validateArtifact checks one artifact's formats (not its signature).
func validateArtifact(i int, a *logbookv1.ReleaseArtifact) error {
	if err := ValidatePlatform(a.GetPlatform()); err != nil {
		return fmt.Errorf("%w %d: %w", ErrInvalidArtifact, i, err)
	}
	bad := func(why string) error {
		return fmt.Errorf("%w %d (%s): %s", ErrInvalidArtifact, i, a.GetPlatform(), why)
	}
	if err := ValidateArtifactURL(a.GetUrl()); err != nil {
		return fmt.Errorf("artifact %d (%s): %w", i, a.GetPlatform(), err)
	}
	if s := a.GetSha256(); len(s) != 64 || !allLowerHex(s) {
		return bad(fmt.Sprintf("sha256 %q: want 64 lowercase hex digits", s))
	}
	if a.GetSize() == 0 {
		return bad("size is 0")
	}
	if n := len(a.GetSignature()); n != 64 {
		return bad(fmt.Sprintf("ed25519 signature is %d bytes, want 64", n))
	}
	return nil
}

// validateProcessName checks a manifest method or domain: they become
// tokens of NATS subjects and parts of process stream ids, so no dots.
func validateProcessName(field, s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("%s %q: must be 1-%d characters", field, s, MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' {
			return fmt.Errorf("%s %q: character %q; allowed are letters, digits, '_' and '-'", field, s, c)
		}
	}
	return nil
}

func validateArg(field, s string) error {
	if len(s) > MaxCommandLen {
		return fmt.Errorf("%s longer than %d bytes", field, MaxCommandLen)
	}
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s is not valid UTF-8 or contains NUL", field)
	}
	return nil
}

// validateProcess checks one manifest entry.
func validateProcess(i int, p *logbookv1.ReleaseProcess) error {
	bad := func(err error) error {
		return fmt.Errorf("%w: process %d (%s.%s): %w", ErrInvalidManifest, i, p.GetMethod(), p.GetDomain(), err)
	}
	if err := validateProcessName("method", p.GetMethod()); err != nil {
		return bad(err)
	}
	if err := validateProcessName("domain", p.GetDomain()); err != nil {
		return bad(err)
	}
	if p.GetCommand() == "" {
		return bad(fmt.Errorf("empty command"))
	}
	if err := validateArg("command", p.GetCommand()); err != nil {
		return bad(err)
	}
	if len(p.GetArgs()) > MaxProcessArgs {
		return bad(fmt.Errorf("%d args, at most %d allowed", len(p.GetArgs()), MaxProcessArgs))
	}
	for j, a := range p.GetArgs() {
		if err := validateArg(fmt.Sprintf("arg %d", j), a); err != nil {
			return bad(err)
		}
	}
	switch p.GetRestartPolicy() {
	case logbookv1.ReleaseRestartPolicy_RELEASE_RESTART_POLICY_ALWAYS,
		logbookv1.ReleaseRestartPolicy_RELEASE_RESTART_POLICY_ON_FAILURE,
		logbookv1.ReleaseRestartPolicy_RELEASE_RESTART_POLICY_NEVER:
	default:
		return bad(fmt.Errorf("restart policy %v: want ALWAYS, ON_FAILURE or NEVER", p.GetRestartPolicy()))
	}
	return nil
}
