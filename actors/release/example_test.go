package release_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/release"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func Example() {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)) // the publisher's key
	env := actors.Env{Now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Principal: "ci"}

	art := &logbookv1.ReleaseArtifact{
		Platform: "linux/arm64",
		Url:      "https://releases.example.com/logbook/2026.11.3/linux/arm64/logbook-agent",
		Sha256:   strings.Repeat("ab", 32),
		Size:     12_345_678,
	}
	art.Signature = release.Sign(key, "2026.11.3", art)

	s := release.New("2026.11.3")
	evs, err := release.Decide(s, &logbookv1.PublishRelease{
		Repos:     map[string]string{"github.com/logbook-fleet/logbook": strings.Repeat("0123456789", 4)},
		Artifacts: []*logbookv1.ReleaseArtifact{art},
		Manifest: []*logbookv1.ReleaseProcess{{
			Method: "syslogforwarding", Domain: "nginx", Command: "/usr/sbin/nginx",
			RestartPolicy: logbookv1.ReleaseRestartPolicy_RELEASE_RESTART_POLICY_ALWAYS,
		}},
		SignerPublicKey: key.Public().(ed25519.PublicKey), // from the trusted keys, not the client
	}, env)
	fmt.Println(len(evs), err)
	for _, e := range evs {
		s = release.Evolve(s, e)
	}
	fmt.Println(s.GetStatus())

	_, err = release.Decide(s, &logbookv1.YankRelease{Reason: "CVE-2026-1234"}, env)
	fmt.Println(err)
	s = release.Evolve(s, &logbookv1.ReleaseYanked{Version: "2026.11.3", Reason: "CVE-2026-1234"})
	_, err = release.Decide(s, &logbookv1.YankRelease{Reason: "again"}, env)
	fmt.Println(errors.Is(err, release.ErrYanked))
	// Output:
	// 1 <nil>
	// RELEASE_STATUS_PUBLISHED
	// <nil>
	// true
}
