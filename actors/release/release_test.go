package release_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors/release"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

const (
	version   = "2026.11.3"
	gitSHA1   = "0123456789abcdef0123456789abcdef01234567"
	gitSHA256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

var (
	signer    = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	signerPub = signer.Public().(ed25519.PublicKey)
	stranger  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
)

// artifact returns a valid artifact for platform, signed for version.
func artifact(platform string) *logbookv1.ReleaseArtifact {
	sum := sha256.Sum256([]byte("binary for " + platform))
	a := &logbookv1.ReleaseArtifact{
		Platform: platform,
		Url:      "https://releases.example.com/logbook/" + version + "/" + platform + "/logbook-agent",
		Sha256:   hex.EncodeToString(sum[:]),
		Size:     12_345_678,
	}
	a.Signature = release.Sign(signer, version, a)
	return a
}

// publish returns a valid PublishRelease, changed by mods.
func publish(mods ...func(*logbookv1.PublishRelease)) *logbookv1.PublishRelease {
	c := &logbookv1.PublishRelease{
		Version: version,
		Repos: map[string]string{
			"github.com/logbook-fleet/logbook": gitSHA1,
			"boot-meta":                        gitSHA256,
		},
		Artifacts: []*logbookv1.ReleaseArtifact{artifact("linux/arm64"), artifact("linux/amd64")},
		Manifest: []*logbookv1.ReleaseProcess{{
			Method:        "syslogforwarding",
			Domain:        "nginx",
			Command:       "/usr/sbin/nginx",
			Args:          []string{"-g", "daemon off;"},
			RestartPolicy: logbookv1.ReleaseRestartPolicy_RELEASE_RESTART_POLICY_ALWAYS,
		}},
		SignerPublicKey: signerPub,
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

// published is the event a valid publish produces under env.
func published(c *logbookv1.PublishRelease) *logbookv1.ReleasePublished {
	return &logbookv1.ReleasePublished{
		Version:         version,
		Repos:           c.Repos,
		Artifacts:       c.Artifacts,
		Manifest:        c.Manifest,
		SignerPublicKey: c.SignerPublicKey,
		PublishedAt:     timestamppb.New(now),
		PublishedBy:     "alice",
	}
}

func yanked(reason string) *logbookv1.ReleaseYanked {
	return &logbookv1.ReleaseYanked{Version: version, Reason: reason, YankedAt: timestamppb.New(now), YankedBy: "alice"}
}

func TestPublishRelease(t *testing.T) {
	unsignedButWellFormed := publish(func(c *logbookv1.PublishRelease) {
		c.SignerPublicKey = nil
		c.Artifacts[0].Signature = bytes.Repeat([]byte{1}, 64)
	})
	noVersion := publish(func(c *logbookv1.PublishRelease) { c.Version = "" })
	noManifest := publish(func(c *logbookv1.PublishRelease) { c.Manifest = nil })
	arm := func(f func(a *logbookv1.ReleaseArtifact)) func(*logbookv1.PublishRelease) {
		return func(c *logbookv1.PublishRelease) { f(c.Artifacts[0]) }
	}
	proc := func(f func(p *logbookv1.ReleaseProcess)) func(*logbookv1.PublishRelease) {
		return func(c *logbookv1.PublishRelease) { f(c.Manifest[0]) }
	}
	run(t, []spec{
		{name: "publishes a verified release", when: publish(), then: []proto.Message{published(publish())}},
		{name: "empty version means this entity", when: noVersion, then: []proto.Message{published(noVersion)}},
		{name: "manifest may be empty", when: noManifest, then: []proto.Message{published(noManifest)}},
		{name: "without a signer key signatures are checked for length only",
			when: unsignedButWellFormed, then: []proto.Message{published(unsignedButWellFormed)}},

		{name: "refused when already published", given: []proto.Message{published(publish())},
			when: publish(), errs: []error{release.ErrAlreadyPublished}},
		{name: "refused when yanked", given: []proto.Message{published(publish()), yanked("cve")},
			when: publish(), errs: []error{release.ErrAlreadyPublished}},
		{name: "refused for another version", when: publish(func(c *logbookv1.PublishRelease) { c.Version = "2026.11.4" }),
			errs: []error{release.ErrVersionMismatch}},
		{name: "refused on an entity with an invalid version", id: "2026 11 3", when: noVersion,
			errs: []error{release.ErrInvalidVersion}},

		{name: "no repos", when: publish(func(c *logbookv1.PublishRelease) { c.Repos = nil }),
			errs: []error{release.ErrInvalidRepo}},
		{name: "bad repo name", when: publish(func(c *logbookv1.PublishRelease) { c.Repos["../etc"] = gitSHA1 }),
			errs: []error{release.ErrInvalidRepo}},
		{name: "short githash", when: publish(func(c *logbookv1.PublishRelease) { c.Repos["boot-meta"] = "abc123" }),
			errs: []error{release.ErrInvalidGitHash}},
		{name: "uppercase githash", when: publish(func(c *logbookv1.PublishRelease) { c.Repos["boot-meta"] = strings.ToUpper(gitSHA1) }),
			errs: []error{release.ErrInvalidGitHash}},

		{name: "no artifacts", when: publish(func(c *logbookv1.PublishRelease) { c.Artifacts = nil }),
			errs: []error{release.ErrInvalidArtifact}},
		{name: "bad platform", when: publish(arm(func(a *logbookv1.ReleaseArtifact) { a.Platform = "Linux/ARM64" })),
			errs: []error{release.ErrInvalidArtifact, release.ErrInvalidPlatform}},
		{name: "duplicate platform", when: publish(func(c *logbookv1.PublishRelease) { c.Artifacts[1] = artifact("linux/arm64") }),
			errs: []error{release.ErrInvalidArtifact}},
		{name: "relative url", when: publish(arm(func(a *logbookv1.ReleaseArtifact) { a.Url = "logbook-agent" })),
			errs: []error{release.ErrInvalidArtifact}},
		{name: "credentials in url", when: publish(arm(func(a *logbookv1.ReleaseArtifact) { a.Url = "https://u:secret@example.com/x" })),
			errs: []error{release.ErrInvalidArtifact}},
		{name: "short sha256", when: publish(arm(func(a *logbookv1.ReleaseArtifact) { a.Sha256 = "abcd" })),
			errs: []error{release.ErrInvalidArtifact}},
		{name: "uppercase sha256", when: publish(arm(func(a *logbookv1.ReleaseArtifact) { a.Sha256 = strings.ToUpper(a.Sha256) })),
			errs: []error{release.ErrInvalidArtifact}},
		{name: "zero size", when: publish(arm(func(a *logbookv1.ReleaseArtifact) { a.Size = 0 })),
			errs: []error{release.ErrInvalidArtifact}},
		{name: "signature of wrong length", when: publish(arm(func(a *logbookv1.ReleaseArtifact) { a.Signature = a.Signature[:63] })),
			errs: []error{release.ErrInvalidArtifact}},

		{name: "signature over another digest", when: publish(arm(func(a *logbookv1.ReleaseArtifact) { a.Size++ })),
			errs: []error{release.ErrBadSignature}},
		{name: "signature made for another version (downgrade)", when: publish(arm(func(a *logbookv1.ReleaseArtifact) {
			a.Signature = release.Sign(signer, "2025.1.0", a)
		})), errs: []error{release.ErrBadSignature}},
		{name: "signed by a stranger", when: publish(arm(func(a *logbookv1.ReleaseArtifact) {
			a.Signature = release.Sign(stranger, version, a)
		})), errs: []error{release.ErrBadSignature}},
		{name: "malformed signer key", when: publish(func(c *logbookv1.PublishRelease) { c.SignerPublicKey = c.SignerPublicKey[:31] }),
			errs: []error{release.ErrBadSignature}},

		{name: "method with a dot", when: publish(proc(func(p *logbookv1.ReleaseProcess) { p.Method = "syslog.forwarding" })),
			errs: []error{release.ErrInvalidManifest}},
		{name: "empty domain", when: publish(proc(func(p *logbookv1.ReleaseProcess) { p.Domain = "" })),
			errs: []error{release.ErrInvalidManifest}},
		{name: "empty command", when: publish(proc(func(p *logbookv1.ReleaseProcess) { p.Command = "" })),
			errs: []error{release.ErrInvalidManifest}},
		{name: "NUL in an argument", when: publish(proc(func(p *logbookv1.ReleaseProcess) { p.Args = []string{"a\x00b"} })),
			errs: []error{release.ErrInvalidManifest}},
		{name: "unspecified restart policy", when: publish(proc(func(p *logbookv1.ReleaseProcess) {
			p.RestartPolicy = logbookv1.ReleaseRestartPolicy_RELEASE_RESTART_POLICY_UNSPECIFIED
		})), errs: []error{release.ErrInvalidManifest}},
		{name: "unknown restart policy", when: publish(proc(func(p *logbookv1.ReleaseProcess) { p.RestartPolicy = 99 })),
			errs: []error{release.ErrInvalidManifest}},
		{name: "duplicate process", when: publish(func(c *logbookv1.PublishRelease) {
			c.Manifest = append(c.Manifest, proto.CloneOf(c.Manifest[0]))
		}), errs: []error{release.ErrInvalidManifest}},
	})
}

func TestYankRelease(t *testing.T) {
	run(t, []spec{
		{name: "yanks a published release", given: []proto.Message{published(publish())},
			when: &logbookv1.YankRelease{Version: version, Reason: "CVE-2026-1234"},
			then: []proto.Message{yanked("CVE-2026-1234")}},
		{name: "empty version means this entity", given: []proto.Message{published(publish())},
			when: &logbookv1.YankRelease{Reason: "broken"}, then: []proto.Message{yanked("broken")}},
		{name: "refused when not published",
			when: &logbookv1.YankRelease{Version: version, Reason: "x"}, errs: []error{release.ErrNotPublished}},
		{name: "refused when already yanked", given: []proto.Message{published(publish()), yanked("first")},
			when: &logbookv1.YankRelease{Version: version, Reason: "second"}, errs: []error{release.ErrYanked}},
		{name: "refused without a reason", given: []proto.Message{published(publish())},
			when: &logbookv1.YankRelease{Version: version, Reason: "  "}, errs: []error{release.ErrInvalidCommand}},
		{name: "refused with an overlong reason", given: []proto.Message{published(publish())},
			when: &logbookv1.YankRelease{Reason: strings.Repeat("x", release.MaxReasonLen+1)}, errs: []error{release.ErrInvalidCommand}},
		{name: "refused for another version", given: []proto.Message{published(publish())},
			when: &logbookv1.YankRelease{Version: "2026.11.4", Reason: "x"}, errs: []error{release.ErrVersionMismatch}},
	})
}

func TestUnknownCommand(t *testing.T) {
	run(t, []spec{
		{name: "another message", when: &logbookv1.ReleaseYanked{}, errs: []error{release.ErrUnknownCommand}},
		{name: "nil", when: nil, errs: []error{release.ErrUnknownCommand}},
	})
}

func TestFold(t *testing.T) {
	c := publish()
	s := release.New(version)
	if !proto.Equal(s, &logbookv1.ReleaseState{Version: version}) {
		t.Fatalf("New = %v", text(s))
	}
	s = release.Evolve(s, published(c))
	s = release.Evolve(s, &logbookv1.Snapshot{}) // unknown events are ignored
	want := &logbookv1.ReleaseState{
		Version:         version,
		Status:          logbookv1.ReleaseStatus_RELEASE_STATUS_PUBLISHED,
		Repos:           c.Repos,
		Artifacts:       c.Artifacts,
		Manifest:        c.Manifest,
		SignerPublicKey: signerPub,
		PublishedAt:     timestamppb.New(now),
		PublishedBy:     "alice",
	}
	if !proto.Equal(s, want) {
		t.Fatalf("after publish:\ngot:  %v\nwant: %v", text(s), text(want))
	}
	s = release.Evolve(s, yanked("CVE-2026-1234"))
	want.Status = logbookv1.ReleaseStatus_RELEASE_STATUS_YANKED
	want.YankedAt, want.YankedBy, want.YankReason = timestamppb.New(now), "alice", "CVE-2026-1234"
	if !proto.Equal(s, want) {
		t.Fatalf("after yank:\ngot:  %v\nwant: %v", text(s), text(want))
	}
}

// The host keeps state and may reuse or drop events: state must not alias them.
func TestEvolveDoesNotAliasEvent(t *testing.T) {
	e := published(proto.CloneOf(publish()))
	s := release.Evolve(release.New(version), e)
	want := proto.Clone(s)
	e.Repos["boot-meta"] = gitSHA1
	e.Artifacts[0].Size = 1
	e.Manifest[0].Args[0] = "changed"
	e.SignerPublicKey[0] ^= 0xff
	e.PublishedAt.Seconds++
	if !proto.Equal(s, want) {
		t.Fatalf("changing the event changed the state:\ngot:  %v\nwant: %v", text(s), text(want))
	}
}

// Decide is pure: whatever it decides, the state it was given is unchanged,
// and the events it returns share nothing with the command.
func TestDecideDoesNotModifyState(t *testing.T) {
	states := map[string]*logbookv1.ReleaseState{
		"new":       release.New(version),
		"published": release.Evolve(release.New(version), published(publish())),
		"yanked":    release.Evolve(release.Evolve(release.New(version), published(publish())), yanked("x")),
	}
	cmds := []proto.Message{publish(), &logbookv1.YankRelease{Reason: "y"}, &logbookv1.PublishRelease{}}
	for name, s := range states {
		for _, c := range cmds {
			before := proto.Clone(s)
			cmdBefore := proto.Clone(c)
			evs, _ := release.Decide(s, c, env)
			if !proto.Equal(s, before) {
				t.Errorf("%s, %T: state changed", name, c)
			}
			for _, e := range evs {
				if p, ok := e.(*logbookv1.ReleasePublished); ok {
					p.Artifacts[0].Size = 1
					p.Repos["x"] = gitSHA1
				}
			}
			if !proto.Equal(c, cmdBefore) {
				t.Errorf("%s, %T: changing the events changed the command", name, c)
			}
		}
	}
}

func TestKind(t *testing.T) {
	if release.Kind.Category != "release" || release.Stream(version) != "release-2026.11.3" {
		t.Fatalf("category %q, stream %q", release.Kind.Category, release.Stream(version))
	}
	if len(release.Kind.Events) != 2 {
		t.Fatalf("Kind.Events = %v", release.Kind.Events)
	}
	if _, err := release.Kind.Decide(&logbookv1.ChannelState{}, publish(), env); err == nil {
		t.Fatal("Decide accepted a foreign state type")
	}
}

func TestSigningMessage(t *testing.T) {
	a := &logbookv1.ReleaseArtifact{Platform: "linux/arm64", Sha256: strings.Repeat("ab", 32), Size: 42, Url: "https://x/y"}
	want := "logbook release artifact v1\nversion=2026.11.3\nplatform=linux/arm64\nsha256=" + strings.Repeat("ab", 32) + "\nsize=42\n"
	if got := string(release.SigningMessage(version, a)); got != want {
		t.Fatalf("SigningMessage =\n%s\nwant\n%s", got, want)
	}
	a.Signature = ed25519.Sign(signer, []byte(want))
	if err := release.VerifyArtifact(signerPub, version, a); err != nil {
		t.Fatalf("VerifyArtifact: %v", err)
	}
	a.Url = "s3://mirror/elsewhere" // the URL is not signed: mirrors keep the signature valid
	if err := release.VerifyArtifact(signerPub, version, a); err != nil {
		t.Fatalf("VerifyArtifact after moving the URL: %v", err)
	}
}
