package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestApplyEnv(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "")
	models := fs.String("read-models", "", "")
	data := fs.String("data-dir", "", "")
	if err := fs.Parse([]string{"--listen", ":9000"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"LOGBOOK_LISTEN":      ":1", // the flag wins
		"LOGBOOK_READ_MODELS": "postgres://db/logbook",
		"LOGBOOK_DATA":        "/srv/logbook",
	}
	if err := applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if *listen != ":9000" || *models != "postgres://db/logbook" || *data != "/srv/logbook" {
		t.Fatalf("listen %q, read-models %q, data-dir %q", *listen, *models, *data)
	}
}

func TestApplyEnvBadValue(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.Duration("shutdown-timeout", 0, "")
	err := applyEnv(fs, func(k string) (string, bool) { return "soon", k == "LOGBOOK_SHUTDOWN_TIMEOUT" })
	if err == nil || !strings.Contains(err.Error(), "LOGBOOK_SHUTDOWN_TIMEOUT") {
		t.Fatalf("err = %v; want one naming the variable", err)
	}
}

func TestResolveDefaultsAndErrors(t *testing.T) {
	c := serveConfig{DataDir: "/var/lib/logbook", Listen: ":8080", NATS: "embedded", NATSListen: "0.0.0.0:4250",
		LogFormat: "text", LogLevel: "info", ShutdownTimeout: 1, Runtime: runtimeSettings{GCPercent: defaultGCPercent, MemoryLimit: defaultMemoryLimit}}
	if err := c.resolve(); err != nil {
		t.Fatal(err)
	}
	if c.Store != "pebble:///var/lib/logbook/log" || c.ReadModels != "sqlite:///var/lib/logbook/readmodels.db" ||
		c.Dump != "file:///var/lib/logbook/dumps" || c.AdminTokenFile != "/var/lib/logbook/admin.token" {
		t.Fatalf("defaults: %+v", c)
	}

	bad := serveConfig{DataDir: "/d", Listen: "8080", NATS: "redis://x", NATSListen: "0.0.0.0:4250",
		Store: "esdb://x", ReadModels: "mysql://u:secret@h/db", Dump: "ftp://x", LogFormat: "xml", LogLevel: "loud",
		Runtime: runtimeSettings{GCPercent: 0, MemoryLimit: "lots"}}
	err := bad.resolve()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"--listen", "--nats", "--store", "esdb", "--read-models", "--dump", "--log-format", "--log-level", "--shutdown-timeout", "--gc-percent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows a password:\n%v", err)
	}
}

func TestServeHelpLeavesOutClientFlags(t *testing.T) {
	var out strings.Builder
	if err := Run(t.Context(), []string{"serve", "--help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	if !strings.Contains(help, "--read-models") || strings.Contains(help, "--server string") || strings.Contains(help, "--output") {
		t.Fatalf("serve --help:\n%s", help)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	key, err := loadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	again, err := loadOrCreateKey(path)
	if err != nil || !again.Equal(key) {
		t.Fatalf("second load: %v; same key %v", err, again.Equal(key))
	}
	// The key file is PKCS#8 PEM, so release publish --signing-key and
	// openssl read it too.
	data, _ := os.ReadFile(path)
	if k, err := parseSigningKey(data); err != nil || !k.Equal(key) {
		t.Fatalf("parseSigningKey of the file: %v", err)
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a bad key file: %v; want an error naming it", err)
	}
}

// The metered store keeps the embedded log's Verify progress visible.
func TestMeteredStoreVerifyProgress(t *testing.T) {
	st, err := embedded.Open(t.Context(), "metered", embedded.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 300 // progress comes every 256 appends
	for i := range n {
		ev, _ := events.NewEvent(&logbookv1.UnitHeartbeatReceived{}, events.Metadata{})
		if _, err := st.Append(t.Context(), fmt.Sprintf("unit-ship%d", i), events.Any, ev); err != nil {
			t.Fatal(err)
		}
	}
	var m events.Store = newMeteredStore(st, st)
	pv, ok := m.(progressVerifier)
	if !ok {
		t.Fatal("the metered store hides VerifyProgress")
	}
	var last events.Head
	head, err := pv.VerifyProgress(t.Context(), func(h events.Head) { last = h })
	if err != nil || head.Position != n || last.Position == 0 {
		t.Fatalf("VerifyProgress = %+v, %v; last progress %+v", head, err, last)
	}
}

func TestRuntimeSettings(t *testing.T) {
	for _, tc := range []struct {
		gc      int
		limit   string
		bytes   int64
		wantErr string
	}{
		{400, "768MiB", 768 << 20, ""},
		{100, "2GiB", 2 << 30, ""},
		{200, "off", 0, ""},
		{-1, "1GiB", 1 << 30, ""},
		{-1, "off", 0, "needs a --memory-limit"},
		{0, "1GiB", 0, "--gc-percent 0"},
		{-5, "1GiB", 0, "--gc-percent -5"},
		{100, "lots", 0, `--memory-limit "lots"`},
	} {
		r := runtimeSettings{GCPercent: tc.gc, MemoryLimit: tc.limit}
		err := r.resolve()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%d, %q: %v", tc.gc, tc.limit, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%d, %q: error %v, want one with %q", tc.gc, tc.limit, err, tc.wantErr)
		case err == nil && r.limit != tc.bytes:
			t.Errorf("%d, %q: limit %d bytes, want %d", tc.gc, tc.limit, r.limit, tc.bytes)
		}
	}
}
