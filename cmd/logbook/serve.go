package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// serveConfig is logbook serve's configuration: flags, each with an
// environment variable as fallback.
type serveConfig struct {
	// DataDir holds everything of one control-plane node by default.
	DataDir string
	// Listen is the HTTP address of the API, /ingest, /metrics, /healthz
	// and /readyz.
	Listen string
	// Store is the event log URL: pebble:///path (embedded, the default,
	// <data>/log).
	Store string
	// NATS is "embedded" (run the embedded NATS server on NATSListen) or
	// the nats:// URL of an external server or cluster.
	NATS       string
	NATSListen string
	// NATSAdvertise are the NATS URLs agents are told at enrolment
	// (default: the embedded server's own).
	NATSAdvertise []string
	// ReadModels is the read-model database URL: sqlite:///path (default
	// <data>/readmodels.db) or postgres://...
	ReadModels string
	// Dump is the blob URL daily dumps go to (file:///..., s3://...,
	// gs://...); "off" disables them. Default file://<data>/dumps.
	Dump string
	// LogFormat is text or json; LogLevel debug, info, warn or error.
	LogFormat, LogLevel string
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// AdminTokenFile is where the bootstrap admin token is written
	// (default <data>/admin.token).
	AdminTokenFile string
	// SigningKey is the file of the ed25519 key commands are signed with
	// (default <data>/signing.key, created on first start). Every node of
	// a cluster needs the same key: agents trust one.
	SigningKey string

	// Runtime sets the Go garbage collector (see runtime.go).
	Runtime runtimeSettings

	// Cluster runs this node as a member of a raft cluster (see
	// clusterConfig); false: a single node.
	Cluster clusterConfig

	// ready, when set, receives the node once it serves (tests, dev).
	ready func(*node)
}

// clusterConfig is the raft membership of a clustered node.
type clusterConfig struct {
	Enabled bool
	// NodeID names the node; it must not change across restarts.
	NodeID string
	// Listen is the address for raft and node-to-node calls; Advertise
	// the address the other nodes dial (default: Listen's).
	Listen, Advertise string
	// Bootstrap creates a new cluster with this node alone; Join asks
	// members (any of them) to add it.
	Bootstrap bool
	Join      []string
	// NATSListen is the embedded NATS server's route address; NATSRoutes
	// the other nodes' route addresses; NATSSecret authenticates routes.
	NATSListen string
	NATSRoutes []string
	NATSSecret string
}

// envPrefix prefixes every flag's environment variable: --read-models is
// LOGBOOK_READ_MODELS.
const envPrefix = "LOGBOOK_"

func envName(flag string) string {
	if flag == "data-dir" {
		return envData // shared with the CLI, which reads the admin token there
	}
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag of fs the command line did not set from its
// environment variable, if that is set.
func applyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	return errors.Join(errs...)
}

func defaultDataDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" { // systemd StateDirectory=
		return d
	}
	return "./logbook-data"
}

func newServeCommand() *cobra.Command {
	cfg := serveConfig{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a control-plane node: log, NATS, entities, read models, API",
		Long: `serve runs a Logbook control-plane node in one process: the embedded event
log, the embedded NATS server the edge agents connect to, the entities (units,
processes, releases, channels), the command dispatcher, the read models, the
daily dumps, and the HTTP API (Connect: gRPC, gRPC-Web and JSON), /ingest,
/metrics, /healthz and /readyz. Nothing needs to be installed; everything
lives in the data directory unless a URL flag points elsewhere.

At its first start serve creates an admin token and writes it to
<data>/admin.token (mode 0600); the logbook CLI finds it there with
--data-dir, or pass it with --token / LOGBOOK_TOKEN.

Every flag can also be set by an environment variable: LOGBOOK_ and the
flag's name in capitals with '_' for '-' (--read-models: LOGBOOK_READ_MODELS),
except --data-dir, which is LOGBOOK_DATA (the CLI reads the admin token
there). Flags win over the environment.

Back-ends by URL:
  --store        pebble:///var/lib/logbook/log   (embedded log; the default)
  --nats         embedded | nats://host:4222[,nats://...]
  --read-models  sqlite:///var/lib/logbook/readmodels.db | postgres://user@host/db
  --dump         file:///var/backups/logbook | s3://bucket?region=... | gs://bucket | off

SIGINT or SIGTERM shut the node down gracefully: the API stops taking
requests, in-flight work drains, and the log is closed cleanly.`,
		Example: `  # everything in ./logbook-data, API on 127.0.0.1:8080, NATS on :4250
  logbook serve

  # a production-like node
  logbook serve --data-dir /var/lib/logbook --listen :8080 \
    --read-models postgres://logbook@db/logbook --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags(), os.LookupEnv); err != nil {
				return newUsageError(cmd, err)
			}
			return serve(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addNodeFlags(f, &cfg, nodeDefaults{dataDir: defaultDataDir(), natsListen: "0.0.0.0:4250", logLevel: "info"})

	host, _ := os.Hostname()
	f.BoolVar(&cfg.Cluster.Enabled, "cluster", false, "replicate the log over a raft cluster of control-plane nodes (with --bootstrap or --join)")
	f.StringVar(&cfg.Cluster.NodeID, "node-id", host, "this node's name in the cluster; must not change across restarts")
	f.StringVar(&cfg.Cluster.Listen, "cluster-listen", "0.0.0.0:7400", "address for raft and node-to-node calls")
	f.StringVar(&cfg.Cluster.Advertise, "cluster-advertise", "", "address the other nodes reach this one at (default: --cluster-listen, which must then not be 0.0.0.0)")
	f.BoolVar(&cfg.Cluster.Bootstrap, "bootstrap", false, "create a new cluster with this node as its first member (once, on one node)")
	f.StringSliceVar(&cfg.Cluster.Join, "join", nil, "cluster addresses of existing members to join through (any member; comma-separated)")
	f.StringVar(&cfg.Cluster.NATSListen, "nats-cluster-listen", "0.0.0.0:6250", "route address of the embedded NATS server, which joins the other nodes' (cluster mode)")
	f.StringSliceVar(&cfg.Cluster.NATSRoutes, "nats-routes", nil, "route addresses (host:port) of the other nodes' embedded NATS servers (cluster mode)")
	f.StringVar(&cfg.Cluster.NATSSecret, "nats-cluster-secret", "", "secret the embedded NATS servers' routes authenticate with, the same on every node (cluster mode; prefer LOGBOOK_NATS_CLUSTER_SECRET)")
	return cmd
}

// nodeDefaults are the defaults that differ between serve and dev.
type nodeDefaults struct{ dataDir, natsListen, logLevel string }

// addNodeFlags defines the flags of a control-plane node on f: serve's,
// and dev's, which runs one.
func addNodeFlags(f *pflag.FlagSet, cfg *serveConfig, d nodeDefaults) {
	f.StringVar(&cfg.DataDir, "data-dir", d.dataDir, "directory for the log, keys, tokens and default read models")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "HTTP address of the API, /ingest, /metrics and health checks (\":8080\" for every interface)")
	f.StringVar(&cfg.Store, "store", "", "event log URL (default pebble://<data-dir>/log)")
	f.StringVar(&cfg.NATS, "nats", "embedded", `"embedded" or the nats:// URL(s) of an external NATS server, comma-separated`)
	f.StringVar(&cfg.NATSListen, "nats-listen", d.natsListen, "address of the embedded NATS server (port 0: any free port)")
	f.StringSliceVar(&cfg.NATSAdvertise, "nats-advertise", nil, "NATS URLs agents are told at enrolment (default: the embedded server's own)")
	f.StringVar(&cfg.ReadModels, "read-models", "", "read-model database URL (default sqlite://<data-dir>/readmodels.db)")
	f.StringVar(&cfg.Dump, "dump", "", `blob URL for daily dumps of readings and audit events, or "off" (default file://<data-dir>/dumps)`)
	f.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&cfg.LogLevel, "log-level", d.logLevel, "log level: debug, info, warn or error")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	f.StringVar(&cfg.AdminTokenFile, "admin-token-file", "", "where the first start writes the admin token (default <data-dir>/admin.token)")
	f.StringVar(&cfg.SigningKey, "signing-key", "", "file of the ed25519 key commands are signed with, created on first start (default <data-dir>/signing.key); the same file on every node of a cluster")
	f.IntVar(&cfg.Runtime.GCPercent, "gc-percent", defaultGCPercent, "Go garbage collection target: heap growth in percent between collections (Go's GOGC; the GOGC variable wins); higher collects less often, steadier command latency")
	f.StringVar(&cfg.Runtime.MemoryLimit, "memory-limit", defaultMemoryLimit, `soft limit of the Go runtime's memory (Go's GOMEMLIMIT, which wins), or "off"; raise it with the fleet (10,000 units hold about 200 MiB live) and keep it under what the node may use`)
}

// resolve fills the defaults that depend on the data directory and checks
// every value, reporting all problems at once.
func (c *serveConfig) resolve() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: must not be empty"))
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		errs = append(errs, fmt.Errorf("--data-dir %q: %w", c.DataDir, err))
	}
	c.DataDir = abs
	if c.Store == "" {
		c.Store = "pebble://" + filepath.Join(c.DataDir, "log")
	}
	if c.ReadModels == "" {
		c.ReadModels = "sqlite://" + filepath.Join(c.DataDir, "readmodels.db")
	}
	if c.Dump == "" {
		c.Dump = "file://" + filepath.Join(c.DataDir, "dumps")
	}
	if c.AdminTokenFile == "" {
		c.AdminTokenFile = filepath.Join(c.DataDir, "admin.token")
	}
	if c.SigningKey == "" {
		c.SigningKey = filepath.Join(c.DataDir, "signing.key")
	}
	if _, err := storePath(c.Store); err != nil {
		errs = append(errs, err)
	}
	if c.NATS != "embedded" {
		for _, u := range strings.Split(c.NATS, ",") {
			if err := checkURL("--nats", u, "nats", "tls", "ws", "wss"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
		errs = append(errs, fmt.Errorf("--nats-listen %q: %w", c.NATSListen, err))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.Listen, err))
	}
	if err := checkURL("--read-models", c.ReadModels, "sqlite", "postgres", "postgresql"); err != nil {
		errs = append(errs, err)
	}
	if c.Dump != "off" {
		if err := checkURL("--dump", c.Dump, "file", "mem", "s3", "gs", "azblob"); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if err := c.Runtime.resolve(); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	if cl := c.Cluster; cl.Enabled {
		if cl.NodeID == "" {
			errs = append(errs, errors.New("--node-id: must not be empty in cluster mode"))
		}
		if _, _, err := net.SplitHostPort(cl.Listen); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-listen %q: %w", cl.Listen, err))
		}
		adv := cl.Advertise
		if adv == "" {
			adv = cl.Listen
		}
		if host, _, err := net.SplitHostPort(adv); err == nil {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				errs = append(errs, fmt.Errorf("--cluster-advertise: the other nodes cannot dial %q; set the address they reach this node at", adv))
			}
		}
		if cl.Bootstrap && len(cl.Join) > 0 {
			errs = append(errs, errors.New("--bootstrap and --join: pick one (bootstrap the first node, join the others)"))
		}
		if c.NATS == "embedded" && len(cl.NATSRoutes) > 0 && len(cl.NATSSecret) < 16 {
			errs = append(errs, errors.New("--nats-cluster-secret: at least 16 characters, the same on every node, when --nats-routes joins the embedded NATS servers"))
		}
	} else if cl.Bootstrap || len(cl.Join) > 0 || len(cl.NATSRoutes) > 0 {
		errs = append(errs, errors.New("--bootstrap, --join and --nats-routes need --cluster"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %v: must be positive", c.ShutdownTimeout))
	}
	if len(errs) > 0 {
		return newUsageError(nil, errors.Join(errs...))
	}
	return nil
}

// storePath returns the directory of an embedded log URL.
func storePath(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("--store %q: %w", raw, err)
	}
	switch u.Scheme {
	case "pebble", "embedded":
		p := u.Path
		if u.Host != "" { // pebble://relative/dir
			p = u.Host + p
		}
		if p == "" {
			return "", fmt.Errorf("--store %q: no directory; want pebble:///path/to/log", raw)
		}
		return p, nil
	case "nats", "esdb", "jetstream":
		return "", fmt.Errorf("--store %q: the %s:// event-log back-end is not available in this build; use pebble:///path (the embedded log)", raw, u.Scheme)
	default:
		return "", fmt.Errorf("--store %q: unknown scheme %q; want pebble:///path", raw, u.Scheme)
	}
}

// checkURL reports whether raw parses as a URL with one of schemes.
func checkURL(flag, raw string, schemes ...string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, redactURL(raw), err)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return nil
		}
	}
	return fmt.Errorf("%s %q: unknown scheme %q; want one of %s", flag, redactURL(raw), u.Scheme, strings.Join(schemes, ", "))
}

// redactURL hides a URL's password for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs a node until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, cfg serveConfig, stderr io.Writer) error {
	if err := cfg.resolve(); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	n, err := startNode(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if cfg.ready != nil {
		cfg.ready(n)
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	case err := <-n.failed:
		logger.Error("a component failed; shutting down", "err", err)
		shutdownErr := n.shutdown(cfg.ShutdownTimeout)
		return errors.Join(err, shutdownErr)
	}
	if err := n.shutdown(cfg.ShutdownTimeout); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// withoutClientFlags makes cmd's help leave out the CLI's global flags
// (--server, --token, -o, --timeout), which mean nothing to a command that
// runs a server rather than calling one.
func withoutClientFlags(cmd *cobra.Command) *cobra.Command {
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) { f.Hidden = true })
		c.Parent().HelpFunc()(c, args)
	})
	return cmd
}
