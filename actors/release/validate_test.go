package release_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/logbook-fleet/logbook/actors/release"
	"github.com/logbook-fleet/logbook/events"
)

func TestValidateVersion(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"2026.11.3", true},
		{"v1.2.0-rc.1+build.7", true},
		{"1", true},
		{"Release_2026", true},
		{strings.Repeat("9", release.MaxVersionLen), true},
		{"", false},
		{strings.Repeat("9", release.MaxVersionLen+1), false},
		{"2026 11 3", false},
		{"2026.11.*", false},
		{"2026.>", false},
		{"2026/11/3", false},
		{"2026\\11", false},
		{"2026\t11", false},
		{"2026\x0011", false},
		{".2026", false},
		{"-rc1", false},
		{"2026.11.3é", false},
	} {
		err := release.ValidateVersion(tc.v)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateVersion(%q) = %v, want ok=%v", tc.v, err, tc.ok)
		}
		if err != nil && !errors.Is(err, release.ErrInvalidVersion) {
			t.Errorf("ValidateVersion(%q) = %v, not ErrInvalidVersion", tc.v, err)
		}
	}
}

func TestValidateGitHash(t *testing.T) {
	for _, tc := range []struct {
		h  string
		ok bool
	}{
		{gitSHA1, true},
		{gitSHA256, true},
		{"", false},
		{gitSHA1[:39], false},
		{gitSHA1 + "0", false},
		{strings.ToUpper(gitSHA1), false},
		{strings.Repeat("g", 40), false},
	} {
		err := release.ValidateGitHash(tc.h)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, release.ErrInvalidGitHash) {
			t.Errorf("ValidateGitHash(%q) = %v, want ok=%v", tc.h, err, tc.ok)
		}
	}
}

func TestValidateRepoName(t *testing.T) {
	for _, tc := range []struct {
		n  string
		ok bool
	}{
		{"logbook", true},
		{"github.com/logbook-fleet/logbook", true},
		{"amplify-edge/boot_meta.v2", true},
		{"", false},
		{"/logbook", false},
		{"logbook/", false},
		{"a//b", false},
		{"a/../b", false},
		{"a b", false},
		{"a*", false},
		{strings.Repeat("a", release.MaxRepoNameLen+1), false},
	} {
		err := release.ValidateRepoName(tc.n)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, release.ErrInvalidRepo) {
			t.Errorf("ValidateRepoName(%q) = %v, want ok=%v", tc.n, err, tc.ok)
		}
	}
}

func TestValidatePlatform(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"linux/arm64", true},
		{"linux/arm/v7", true},
		{"windows/386", true},
		{"", false},
		{"linux", false},
		{"linux/", false},
		{"/arm64", false},
		{"linux/arm/v7/x", false},
		{"Linux/arm64", false},
		{"linux/arm-64", false},
		{"linux /arm64", false},
	} {
		err := release.ValidatePlatform(tc.p)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, release.ErrInvalidPlatform) {
			t.Errorf("ValidatePlatform(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}

func TestValidateArtifactURL(t *testing.T) {
	for _, tc := range []struct {
		u  string
		ok bool
	}{
		{"https://releases.example.com/logbook/2026.11.3/linux/arm64/logbook-agent", true},
		{"s3://bucket/logbook/agent", true},
		{"file:///var/lib/releases/agent", true},
		{"", false},
		{"releases/agent", false},
		{"/releases/agent", false},
		{"mailto:ops@example.com", false},
		{"https://user:pass@example.com/agent", false},
		{"https://example.com/a b", false},
		{"https://example.com/a\nb", false},
		{"https://" + strings.Repeat("a", release.MaxURLLen), false},
		{"https://%zz", false},
	} {
		err := release.ValidateArtifactURL(tc.u)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, release.ErrInvalidArtifact) {
			t.Errorf("ValidateArtifactURL(%q) = %v, want ok=%v", tc.u, err, tc.ok)
		}
	}
}

func FuzzValidateVersion(f *testing.F) {
	for _, s := range []string{"2026.11.3", "v1.2.0-rc.1+build.7", "", " ", "a*", "a>", "a/b", "é", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		err := release.ValidateVersion(v)
		if err != nil {
			if !errors.Is(err, release.ErrInvalidVersion) {
				t.Fatalf("error %v does not wrap ErrInvalidVersion", err)
			}
			return
		}
		// A valid version names a valid stream and is safe in paths and subjects.
		if err := events.ValidateStream(release.Stream(v)); err != nil {
			t.Fatalf("valid version %q makes an invalid stream: %v", v, err)
		}
		if strings.ContainsAny(v, "/\\*> ") || strings.ContainsFunc(v, unicode.IsControl) {
			t.Fatalf("valid version %q contains an unsafe character", v)
		}
	})
}

func FuzzValidateGitHash(f *testing.F) {
	for _, s := range []string{gitSHA1, gitSHA256, "", strings.ToUpper(gitSHA1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		err := release.ValidateGitHash(h)
		if err != nil {
			if !errors.Is(err, release.ErrInvalidGitHash) {
				t.Fatalf("error %v does not wrap ErrInvalidGitHash", err)
			}
			return
		}
		if len(h) != 40 && len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			t.Fatalf("accepted %q", h)
		}
	})
}

func FuzzValidateRepoName(f *testing.F) {
	for _, s := range []string{"logbook", "github.com/a/b", "", "a//b", "../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		err := release.ValidateRepoName(n)
		if err != nil {
			if !errors.Is(err, release.ErrInvalidRepo) {
				t.Fatalf("error %v does not wrap ErrInvalidRepo", err)
			}
			return
		}
		if strings.Contains(n, "..") && strings.Contains("/"+n+"/", "/../") ||
			strings.Contains(n, "//") || strings.HasPrefix(n, "/") || strings.HasSuffix(n, "/") ||
			strings.ContainsFunc(n, unicode.IsSpace) {
			t.Fatalf("accepted %q", n)
		}
	})
}

func FuzzValidatePlatform(f *testing.F) {
	for _, s := range []string{"linux/arm64", "linux/arm/v7", "", "linux", "a/b/c/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := release.ValidatePlatform(p)
		if err != nil {
			if !errors.Is(err, release.ErrInvalidPlatform) {
				t.Fatalf("error %v does not wrap ErrInvalidPlatform", err)
			}
			return
		}
		if n := strings.Count(p, "/"); n != 1 && n != 2 || strings.Contains(p, "\n") || strings.ToLower(p) != p {
			t.Fatalf("accepted %q", p)
		}
	})
}

func FuzzValidateArtifactURL(f *testing.F) {
	for _, s := range []string{"https://example.com/a", "s3://b/k", "file:///x", "", "a", "https://u:p@h/x", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		err := release.ValidateArtifactURL(u)
		if err != nil {
			if !errors.Is(err, release.ErrInvalidArtifact) {
				t.Fatalf("error %v does not wrap ErrInvalidArtifact", err)
			}
			return
		}
		if strings.ContainsFunc(u, unicode.IsSpace) || !strings.Contains(u, ":") {
			t.Fatalf("accepted %q", u)
		}
	})
}
