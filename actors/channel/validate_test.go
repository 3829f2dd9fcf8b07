package channel_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/logbook-fleet/logbook/actors/channel"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		n  string
		ok bool
	}{
		{"stable", true},
		{"canary-eu", true},
		{"beta_2", true},
		{"2026", true},
		{strings.Repeat("a", channel.MaxNameLen), true},
		{"", false},
		{strings.Repeat("a", channel.MaxNameLen+1), false},
		{"Stable", false},
		{"stable.eu", false},
		{"stable eu", false},
		{"stable/eu", false},
		{"stable*", false},
		{"-stable", false},
		{"_stable", false},
	} {
		err := channel.ValidateName(tc.n)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, channel.ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.n, err, tc.ok)
		}
	}
}

func TestValidateFlagKey(t *testing.T) {
	for _, tc := range []struct {
		k  string
		ok bool
	}{
		{"new-dashboard", true},
		{"telemetry.v2", true},
		{"a", true},
		{"", false},
		{"9lives", false},
		{".hidden", false},
		{"New", false},
		{"a b", false},
		{"a/b", false},
		{"a*", false},
		{strings.Repeat("a", channel.MaxFlagKeyLen+1), false},
	} {
		err := channel.ValidateFlagKey(tc.k)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, channel.ErrInvalidFlag) {
			t.Errorf("ValidateFlagKey(%q) = %v, want ok=%v", tc.k, err, tc.ok)
		}
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"stable", "canary-eu", "", "a.b", "A", "a b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		err := channel.ValidateName(n)
		if err != nil {
			if !errors.Is(err, channel.ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
			return
		}
		if err := events.ValidateStream(channel.Stream(n)); err != nil {
			t.Fatalf("valid name %q makes an invalid stream: %v", n, err)
		}
		if strings.ContainsAny(n, "./\\*> ") || strings.ToLower(n) != n || strings.ContainsFunc(n, unicode.IsControl) {
			t.Fatalf("valid name %q is not subject-safe", n)
		}
	})
}

func FuzzValidateFlagKey(f *testing.F) {
	for _, s := range []string{"new-dashboard", "telemetry.v2", "", "A", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		err := channel.ValidateFlagKey(k)
		if err != nil {
			if !errors.Is(err, channel.ErrInvalidFlag) {
				t.Fatalf("error %v does not wrap ErrInvalidFlag", err)
			}
			return
		}
		if strings.ContainsFunc(k, func(r rune) bool { return unicode.IsSpace(r) || r > unicode.MaxASCII }) {
			t.Fatalf("accepted %q", k)
		}
	})
}

// FuzzSetFeatureFlag feeds arbitrary keys and values, as a client could send
// them, through Decide and Evolve.
func FuzzSetFeatureFlag(f *testing.F) {
	f.Add("motd", "hello")
	f.Add("", "")
	f.Add("a", "\xff")
	f.Fuzz(func(t *testing.T, key, value string) {
		s := fold(created())
		evs, err := channel.Decide(s, &logbookv1.SetChannelFeatureFlag{Key: key, Value: value}, env)
		if err != nil {
			if !errors.Is(err, channel.ErrInvalidFlag) {
				t.Fatalf("error %v does not wrap ErrInvalidFlag", err)
			}
			return
		}
		for _, e := range evs {
			s = channel.Evolve(s, e)
		}
		if s.FeatureFlags[key] != value {
			t.Fatalf("flag %q = %q after setting %q", key, s.FeatureFlags[key], value)
		}
	})
}
