package release_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors/release"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// FuzzDecidePublish feeds arbitrary PublishRelease commands (as a client
// could send them) through Decide: it must not panic, must refuse with one of
// the package's errors, or produce exactly one event that verifies.
func FuzzDecidePublish(f *testing.F) {
	good, _ := proto.Marshal(publish())
	f.Add(good)
	unsigned, _ := proto.Marshal(publish(func(c *logbookv1.PublishRelease) { c.SignerPublicKey = nil }))
	f.Add(unsigned)
	f.Add([]byte{})
	sentinels := []error{
		release.ErrInvalidVersion, release.ErrVersionMismatch, release.ErrInvalidRepo, release.ErrInvalidGitHash,
		release.ErrInvalidPlatform, release.ErrInvalidArtifact, release.ErrInvalidManifest, release.ErrBadSignature,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &logbookv1.PublishRelease{}
		if proto.Unmarshal(data, c) != nil {
			return
		}
		s := release.New(version)
		evs, err := release.Decide(s, c, env)
		if err != nil {
			for _, want := range sentinels {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("error %v wraps none of the package's errors", err)
		}
		if len(evs) != 1 {
			t.Fatalf("got %d events", len(evs))
		}
		e := evs[0].(*logbookv1.ReleasePublished)
		if len(e.SignerPublicKey) > 0 {
			for _, a := range e.Artifacts {
				if err := release.VerifyArtifact(e.SignerPublicKey, version, a); err != nil {
					t.Fatalf("accepted an artifact that does not verify: %v", err)
				}
			}
		}
		release.Evolve(s, e)
	})
}
