package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/actors/release"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestParseLabelChanges(t *testing.T) {
	tests := []struct {
		args    []string
		set     map[string]string
		remove  []string
		wantErr string
	}{
		{args: []string{"site=north", "role=tanker"}, set: map[string]string{"site": "north", "role": "tanker"}},
		{args: []string{"spare-"}, set: map[string]string{}, remove: []string{"spare"}},
		{args: []string{"b-", "a-", "b-"}, set: map[string]string{}, remove: []string{"a", "b"}},
		{args: []string{"note="}, set: map[string]string{"note": ""}},
		{args: []string{"k-=v"}, set: map[string]string{"k-": "v"}},
		{args: []string{"url=a=b"}, set: map[string]string{"url": "a=b"}},
		{args: []string{"site=north", "site=north"}, set: map[string]string{"site": "north"}},
		{args: []string{"site"}, wantErr: "want key=value"},
		{args: []string{"-"}, wantErr: "empty key"},
		{args: []string{"=v"}, wantErr: "empty key"},
		{args: []string{"a b=c"}, wantErr: "space"},
		{args: []string{"a=b\nc"}, wantErr: "control character"},
		{args: []string{"site=north", "site=south"}, wantErr: "given twice"},
		{args: []string{"site=north", "site-"}, wantErr: "both set and removed"},
	}
	for _, tt := range tests {
		got, err := parseLabelChanges(tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if !reflect.DeepEqual(got.Set, tt.set) || !reflect.DeepEqual(got.Remove, tt.remove) {
			t.Errorf("%q: got set %v remove %v, want %v %v", tt.args, got.Set, got.Remove, tt.set, tt.remove)
		}
	}
}

func FuzzParseLabelChanges(f *testing.F) {
	for _, s := range []string{"a=b", "a-", "a=", "=", "-", "a=b=c", "k-=v", "é=ü"} {
		f.Add(s, "x-")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ch, err := parseLabelChanges([]string{a, b})
		if err != nil {
			return
		}
		for k := range ch.Set {
			if k == "" || strings.ContainsAny(k, " \t\n") {
				t.Fatalf("bad key %q accepted from %q %q", k, a, b)
			}
		}
		for _, k := range ch.Remove {
			if _, ok := ch.Set[k]; ok {
				t.Fatalf("key %q both set and removed from %q %q", k, a, b)
			}
		}
	})
}

func TestParsePoint(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	loc := time.FixedZone("X", 3600)
	tests := []struct {
		in      string
		pos     uint64
		at      time.Time
		wantErr bool
	}{
		{in: "1207", pos: 1207},
		{in: " 42 ", pos: 42},
		{in: "0", wantErr: true},
		{in: "99999999999999999999999", wantErr: true},
		{in: "now", at: now},
		{in: "2026-11-22T10:00:00Z", at: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)},
		{in: "2026-11-22T10:00:00.5+01:00", at: time.Date(2026, 11, 22, 9, 0, 0, 5e8, time.UTC)},
		{in: "2026-11-22 10:00", at: time.Date(2026, 11, 22, 10, 0, 0, 0, loc)},
		{in: "2026-11-22T10:00:05", at: time.Date(2026, 11, 22, 10, 0, 5, 0, loc)},
		{in: "2026-11-22", at: time.Date(2026, 11, 22, 0, 0, 0, 0, loc)},
		{in: "-2h", at: now.Add(-2 * time.Hour)},
		{in: "2h ago", at: now.Add(-2 * time.Hour)},
		{in: "90m", at: now.Add(-90 * time.Minute)},
		{in: "1d12h ago", at: now.Add(-36 * time.Hour)},
		{in: "3d", at: now.Add(-72 * time.Hour)},
		{in: "", wantErr: true},
		{in: "yesterday", wantErr: true},
		{in: "--2h", wantErr: true},
		{in: "2x", wantErr: true},
		{in: "1d-2h", wantErr: true},
		{in: "12", pos: 12},
		{in: "0000-01-01 00:00", wantErr: true},
	}
	for _, tt := range tests {
		p, err := parsePoint(tt.in, now, loc)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%q: got %v, want an error", tt.in, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if tt.pos != 0 {
			if p.GetPosition() != tt.pos {
				t.Errorf("%q: position %d, want %d", tt.in, p.GetPosition(), tt.pos)
			}
			continue
		}
		if got := p.GetTime().AsTime(); !got.Equal(tt.at) {
			t.Errorf("%q: time %v, want %v", tt.in, got, tt.at)
		}
	}
}

func FuzzParsePoint(f *testing.F) {
	for _, s := range []string{"1207", "now", "2026-11-22T10:00:00Z", "2026-11-22 10:00", "-2h", "2h ago", "1d12h", "3d", "0", "-", "d", "1d-1h", "9999999999d"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePoint(s, now, time.UTC)
		if err != nil {
			return
		}
		switch at := p.GetAt().(type) {
		case *logbookv1.AuditPoint_Position:
			if at.Position == 0 {
				t.Fatalf("%q: position 0 accepted", s)
			}
		case *logbookv1.AuditPoint_Time:
			if !at.Time.IsValid() {
				t.Fatalf("%q: invalid time %v", s, at.Time)
			}
		default:
			t.Fatalf("%q: empty point", s)
		}
	})
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "2h": 2 * time.Hour, "1d": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "1d30m": 24*time.Hour + 30*time.Minute, "0": 0} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1h", "+1h", "d", "1.5d", "xd", "1dd", "1d-1h", "100000d", "2x"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseArtifact(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "agent")
	if err := os.WriteFile(bin, []byte("binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := "9a3a45d01531a20e89ac6ae10b0b0beb0492acd7216a368aa062d1a5fecaf9cd" // sha256("binary")
	sig := strings.Repeat("ab", 64)

	art, err := parseArtifact("linux/arm64=https://dl.example.com/agent,file=" + bin)
	if err != nil {
		t.Fatal(err)
	}
	if art.GetPlatform() != "linux/arm64" || art.GetUrl() != "https://dl.example.com/agent" || art.GetSha256() != sum || art.GetSize() != 6 {
		t.Errorf("from file: got %v", art)
	}
	art, err = parseArtifact("linux/amd64=https://x/y?a=b,sha256=" + strings.ToUpper(sum) + ",size=6,sig=" + sig)
	if err != nil {
		t.Fatal(err)
	}
	if art.GetUrl() != "https://x/y?a=b" || art.GetSha256() != sum || len(art.GetSignature()) != 64 {
		t.Errorf("from digest: got %v", art)
	}
	for _, bad := range []string{
		"linux/arm64",
		"=https://x",
		"linux/arm64=https://x",
		"linux/arm64=https://x,sha256=" + sum,
		"linux/arm64=https://x,sha256=" + sum + ",size=0",
		"linux/arm64=https://x,sha256=" + sum + ",size=6,sig=abc",
		"linux/arm64=https://x,file=" + bin + ",size=6",
		"linux/arm64=https://x,file=" + filepath.Join(dir, "missing"),
		"linux/arm64=https://x,colour=blue",
		"linux/arm64=https://x,size=1,size=2",
	} {
		if _, err := parseArtifact(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func FuzzParseArtifact(f *testing.F) {
	f.Add("linux/arm64=https://x,sha256=" + strings.Repeat("0", 64) + ",size=6")
	f.Add("a=b,sig=" + strings.Repeat("ab", 64))
	f.Add("a=b,c")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "file=") {
			return // reads files
		}
		art, err := parseArtifact(s)
		if err != nil {
			return
		}
		if art.GetPlatform() == "" || art.GetUrl() == "" || art.GetSha256() == "" || art.GetSize() == 0 {
			t.Fatalf("%q: incomplete artifact accepted: %v", s, art)
		}
	})
}

func TestParseSigningKey(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	want := ed25519.NewKeyFromSeed(seed)
	der, err := x509.MarshalPKCS8PrivateKey(want)
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string][]byte{
		"pem":                pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"raw seed":           seed,
		"raw key":            want,
		"hex seed":           []byte(hex.EncodeToString(seed) + "\n"),
		"hex key":            []byte(hex.EncodeToString(want)),
		"b64 seed":           []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
		"b64 seed, unpadded": []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
	}
	for name, b := range forms {
		got, err := parseSigningKey(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("%s: wrong key", name)
		}
	}
	bad := append([]byte{}, want...)
	bad[40] ^= 1
	for name, b := range map[string][]byte{"mismatched halves": bad, "short": []byte("abcd"), "text": []byte("not a key")} {
		if _, err := parseSigningKey(b); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestBuildRelease(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "agent-arm64"), []byte("binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "release.yaml")
	if err := os.WriteFile(file, []byte(`version: 2026.11.3
repos:
  logbook: 4f3c2a1b9d0e8f7a6b5c4d3e2f1a0b9c8d7e6f5a
artifacts:
  - platform: linux/arm64
    url: https://dl.example.com/agent-arm64
    file: agent-arm64
manifest:
  - method: syslogforwarding
    domain: nginx
    command: /usr/bin/logforward
    args: [--target, udp://logs:514]
    restartPolicy: on-failure
`), 0o644); err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	rel, err := buildRelease(nil, file, []string{"ui=0123456789abcdef0123456789abcdef01234567"}, nil, "", key)
	if err != nil {
		t.Fatal(err)
	}
	if rel.GetVersion() != "2026.11.3" || len(rel.GetRepos()) != 2 || len(rel.GetArtifacts()) != 1 || len(rel.GetManifest()) != 1 {
		t.Fatalf("got %v", rel)
	}
	if p := rel.GetManifest()[0]; p.GetRestartPolicy() != logbookv1.ReleaseRestartPolicy_RELEASE_RESTART_POLICY_ON_FAILURE || len(p.GetArgs()) != 2 {
		t.Errorf("manifest: %v", p)
	}
	art := rel.GetArtifacts()[0]
	if art.GetSize() != 6 {
		t.Errorf("artifact size %d, want 6", art.GetSize())
	}
	if err := release.VerifyArtifact(key.Public().(ed25519.PublicKey), "2026.11.3", art); err != nil {
		t.Errorf("signature: %v", err)
	}

	// A positional version wins over the file's.
	rel, err = buildRelease([]string{"2026.11.4"}, file, nil, nil, "", key)
	if err != nil || rel.GetVersion() != "2026.11.4" {
		t.Errorf("version override: %v, %v", rel.GetVersion(), err)
	}
	// Unsigned without a key.
	if _, err := buildRelease(nil, file, nil, nil, "", nil); err == nil || !strings.Contains(err.Error(), "--signing-key") {
		t.Errorf("unsigned: %v", err)
	}
	// Manifest file on its own, a bare list.
	mf := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(mf, []byte(`[{"method":"process","domain":"app","command":"/bin/app","restartPolicy":"always"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err = buildRelease([]string{"1.0.0"}, "", []string{"app=0123456789abcdef0123456789abcdef01234567"},
		[]string{"linux/amd64=https://x/app,sha256=" + strings.Repeat("0", 64) + ",size=10"}, mf, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(rel.GetManifest()) != 1 || rel.GetManifest()[0].GetRestartPolicy() != logbookv1.ReleaseRestartPolicy_RELEASE_RESTART_POLICY_ALWAYS {
		t.Errorf("manifest file: %v", rel.GetManifest())
	}
	for name, args := range map[string][]string{"no version": nil} {
		if _, err := buildRelease(args, "", []string{"a=b"}, nil, "", key); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if _, err := buildRelease([]string{"1"}, "", nil, nil, "", key); err == nil {
		t.Error("no repo: want an error")
	}
	if _, err := buildRelease([]string{"1"}, "", []string{"a=b"}, nil, "", key); err == nil {
		t.Error("no artifact: want an error")
	}
}
