package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Environment variables the client reads.
const (
	envServer = "LOGBOOK_SERVER" // the API URL, like --server
	envToken  = "LOGBOOK_TOKEN"  // the bearer token, like --token
	envData   = "LOGBOOK_DATA"   // a serve data directory, like --data-dir
	envConfig = "LOGBOOK_CONFIG" // the config file
)

// defaultServer is where logbook serve listens for the API by default.
const defaultServer = "http://127.0.0.1:8080"

// adminTokenFile is the file in a serve data directory holding the
// bootstrap admin token that logbook serve writes on first start.
const adminTokenFile = "admin.token"

// fileConfig is the config file: what `logbook login` saves.
type fileConfig struct {
	Server string `json:"server,omitempty"`
	Token  string `json:"token,omitempty"`
}

// configPath returns the config file's path: $LOGBOOK_CONFIG, else
// $XDG_CONFIG_HOME/logbook/config.yaml, else ~/.config/logbook/config.yaml.
func configPath(getenv func(string) string) (string, error) {
	if p := getenv(envConfig); p != "" {
		return p, nil
	}
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "logbook", "config.yaml"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("config file: %w (set %s)", err, envConfig)
		}
		home = h
	}
	return filepath.Join(home, ".config", "logbook", "config.yaml"), nil
}

// readConfig reads the config file at path; a missing file is an empty
// config.
func readConfig(path string) (fileConfig, error) {
	var c fileConfig
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// writeConfig writes c to path atomically, readable by its owner only
// (0600; the directory is created 0700).
func writeConfig(path string, c fileConfig) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("config file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return nil
}

// connection is where and as whom the client talks to the server, and
// where each came from (for `logbook whoami` and error messages).
type connection struct {
	Server, ServerSource string
	Token, TokenSource   string
}

// connFlags are the global flags that locate the server.
type connFlags struct {
	server, token, dataDir string
	// serverSet, tokenSet and dataDirSet say whether the flag was given.
	serverSet, tokenSet, dataDirSet bool
}

// resolveConnection picks the server and token. The server: --server, else
// $LOGBOOK_SERVER, else the config file, else defaultServer. The token:
// --token, else admin.token in --data-dir, else $LOGBOOK_TOKEN, else
// admin.token in $LOGBOOK_DATA, else the config file. A token is not
// required here: calls without one fail with "unauthenticated".
func resolveConnection(f connFlags, getenv func(string) string) (connection, error) {
	var c connection
	path, err := configPath(getenv)
	if err != nil {
		return c, err
	}
	cfg, err := readConfig(path)
	if err != nil {
		return c, err
	}

	switch {
	case f.serverSet:
		c.Server, c.ServerSource = f.server, "--server"
	case getenv(envServer) != "":
		c.Server, c.ServerSource = getenv(envServer), "$"+envServer
	case cfg.Server != "":
		c.Server, c.ServerSource = cfg.Server, path
	default:
		c.Server, c.ServerSource = defaultServer, "default"
	}
	if c.Server, err = normalizeServer(c.Server); err != nil {
		return c, fmt.Errorf("%s: %w", c.ServerSource, err)
	}

	switch {
	case f.tokenSet:
		c.Token, c.TokenSource = f.token, "--token"
	case f.dataDirSet && f.dataDir != "":
		c.Token, c.TokenSource, err = readAdminToken(f.dataDir)
	case getenv(envToken) != "":
		c.Token, c.TokenSource = getenv(envToken), "$"+envToken
	case getenv(envData) != "":
		c.Token, c.TokenSource, err = readAdminToken(getenv(envData))
	case cfg.Token != "":
		c.Token, c.TokenSource = cfg.Token, path
	}
	return c, err
}

// readAdminToken reads the bootstrap admin token of the serve data
// directory dir.
func readAdminToken(dir string) (token, source string, err error) {
	path := filepath.Join(dir, adminTokenFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("data directory %s has no readable admin token: %w", dir, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", "", fmt.Errorf("%s is empty", path)
	}
	return t, path, nil
}

// normalizeServer checks the API URL and adds "http://" when the scheme is
// missing ("127.0.0.1:8080" and "localhost:8080" are accepted).
func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty server URL")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	scheme, rest, _ := strings.Cut(s, "://")
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("server URL %q: want http:// or https://", s)
	}
	if rest == "" || strings.HasPrefix(rest, "/") {
		return "", fmt.Errorf("server URL %q has no host", s)
	}
	return strings.TrimRight(s, "/"), nil
}
