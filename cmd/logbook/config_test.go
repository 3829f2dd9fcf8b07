package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain keeps the tests away from the developer's own config file and
// environment.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "logbook-cli-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv(envConfig, filepath.Join(dir, "config.yaml"))
	for _, k := range []string{envServer, envToken, envData} {
		os.Unsetenv(k)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestResolveConnection(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := writeConfig(cfgPath, fileConfig{Server: "http://cfg:1", Token: "cfg-token"}); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, adminTokenFile), []byte("admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	envDataDir := filepath.Join(dir, "envdata")
	if err := os.MkdirAll(envDataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(envDataDir, adminTokenFile), []byte("env-admin-token"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name              string
		flags             connFlags
		env               map[string]string
		server, token     string
		serverSrc, tokSrc string
	}{
		{name: "defaults, no config", env: map[string]string{envConfig: filepath.Join(dir, "none.yaml")},
			server: defaultServer, serverSrc: "default"},
		{name: "config file", env: map[string]string{envConfig: cfgPath},
			server: "http://cfg:1", token: "cfg-token", serverSrc: cfgPath, tokSrc: cfgPath},
		{name: "env beats config", env: map[string]string{envConfig: cfgPath, envServer: "env:2", envToken: "env-token"},
			server: "http://env:2", token: "env-token", serverSrc: "$LOGBOOK_SERVER", tokSrc: "$LOGBOOK_TOKEN"},
		{name: "flags beat env", flags: connFlags{server: "https://flag:3/", serverSet: true, token: "flag-token", tokenSet: true},
			env:    map[string]string{envConfig: cfgPath, envServer: "env:2", envToken: "env-token"},
			server: "https://flag:3", token: "flag-token", serverSrc: "--server", tokSrc: "--token"},
		{name: "--data-dir beats env token", flags: connFlags{dataDir: dataDir, dataDirSet: true},
			env:    map[string]string{envConfig: cfgPath, envToken: "env-token"},
			server: "http://cfg:1", token: "admin-token", serverSrc: cfgPath, tokSrc: filepath.Join(dataDir, adminTokenFile)},
		{name: "LOGBOOK_DATA beats config", env: map[string]string{envConfig: cfgPath, envData: envDataDir},
			server: "http://cfg:1", token: "env-admin-token", serverSrc: cfgPath, tokSrc: filepath.Join(envDataDir, adminTokenFile)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveConnection(tt.flags, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			want := connection{Server: tt.server, ServerSource: tt.serverSrc, Token: tt.token, TokenSource: tt.tokSrc}
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}

	t.Run("data dir without token", func(t *testing.T) {
		_, err := resolveConnection(connFlags{dataDir: dir, dataDirSet: true}, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), "admin token") {
			t.Errorf("got %v, want an admin token error", err)
		}
	})
	t.Run("bad server", func(t *testing.T) {
		for _, s := range []string{"ftp://x", "http://", " "} {
			_, err := resolveConnection(connFlags{server: s, serverSet: true}, func(string) string { return "" })
			if err == nil {
				t.Errorf("--server %q: want an error", s)
			}
		}
	})
	t.Run("bad config file", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte("sever: typo\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := resolveConnection(connFlags{}, func(k string) string { return map[string]string{envConfig: bad}[k] })
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("got %v, want an error naming the file", err)
		}
	})
}

func TestConfigPath(t *testing.T) {
	env := map[string]string{"HOME": "/home/a"}
	get := func(k string) string { return env[k] }
	if p, _ := configPath(get); p != "/home/a/.config/logbook/config.yaml" {
		t.Errorf("HOME: %s", p)
	}
	env["XDG_CONFIG_HOME"] = "/xdg"
	if p, _ := configPath(get); p != "/xdg/logbook/config.yaml" {
		t.Errorf("XDG: %s", p)
	}
	env[envConfig] = "/etc/lb.yaml"
	if p, _ := configPath(get); p != "/etc/lb.yaml" {
		t.Errorf("LOGBOOK_CONFIG: %s", p)
	}
}

func TestWriteConfigMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "config.yaml")
	want := fileConfig{Server: "http://cp:8080", Token: "secret"}
	if err := writeConfig(path, want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	got, err := readConfig(path)
	if err != nil || got != want {
		t.Errorf("read back %+v, %v; want %+v", got, err, want)
	}
}

// TestLoginNoVerify writes the config file through the command line.
func TestLoginNoVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	t.Setenv(envConfig, path)
	var out bytes.Buffer
	err := Run(context.Background(), []string{"login", "--server", "cp.example:8080", "--token", "T0k", "--no-verify"}, &out, &out)
	if err != nil {
		t.Fatalf("login: %v\n%s", err, out.String())
	}
	got, err := readConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := (fileConfig{Server: "http://cp.example:8080", Token: "T0k"}); got != want {
		t.Errorf("config %+v, want %+v", got, want)
	}
}
