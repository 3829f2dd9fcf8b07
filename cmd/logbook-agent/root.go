package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/logbook-fleet/logbook/agent"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Run executes the logbook-agent command line args (without the program
// name), logging to stderr. It runs the agent until ctx is cancelled
// (main cancels it on SIGINT or SIGTERM), then shuts it down cleanly.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCommand(stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

// envPrefix prefixes the environment variable of each flag: --data-dir is
// LOGBOOK_AGENT_DATA_DIR.
const envPrefix = "LOGBOOK_AGENT_"

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newRootCommand(stderr io.Writer) *cobra.Command {
	cfg := agent.DefaultConfig()
	var (
		syslog    []string
		logFormat string
		logLevel  string
	)
	cmd := &cobra.Command{
		Use:   "logbook-agent --data-dir DIR --unit NAME --server URL [--token TOKEN]",
		Short: "Logbook's agent for an edge unit",
		Long: `logbook-agent runs on an edge unit and links it to a Logbook control plane
over NATS. It:

  - enrols once: on first start it generates an ed25519 key, sends the
    one-time --token to the control plane and stores the NATS credentials
    and the control plane's public key in the data directory; later starts
    need no token;
  - receives commands on <unit>.command.<method>.<domain>, checks the
    control plane's signature, the unit and the deadline, stores each
    command before acknowledging it and runs each command id at most once;
    methods: shellcommand (programs on the --allow list only, no shell),
    syslogforwarding (logs named with --syslog), process (supervision) and
    config;
  - spools every event in a local log in the data directory and delivers
    it, in order, until the control plane acknowledges it; offline for
    hours loses nothing;
  - sends heartbeats (not spooled) every --heartbeat.

Every flag can also be set in the environment: --data-dir is
LOGBOOK_AGENT_DATA_DIR, --allow is LOGBOOK_AGENT_ALLOW (comma-separated),
and so on. Flags win over the environment. Prefer LOGBOOK_AGENT_TOKEN to
--token: the command line is visible to other users.

SIGINT or SIGTERM stops the agent cleanly: running commands are stopped
and their results spooled, supervised processes are stopped, the spool is
closed.`,
		Example: `  # first start
  LOGBOOK_AGENT_TOKEN=... logbook-agent --data-dir /var/lib/logbook-agent \
      --unit ship1 --server nats://cp.example:4222 \
      --allow /usr/bin/uptime --allow systemctl --syslog nginx=/var/log/nginx/access.log

  # later starts
  logbook-agent --data-dir /var/lib/logbook-agent --unit ship1 --server nats://cp.example:4222`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := applyEnv(c.Flags()); err != nil {
				return err
			}
			logger, err := newLogger(stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			cfg.Syslog = map[string]string{}
			for _, s := range syslog {
				name, path, ok := strings.Cut(s, "=")
				if !ok {
					return fmt.Errorf("--syslog %q: want name=path", s)
				}
				cfg.Syslog[name] = path
			}
			cfg.Servers = splitList(cfg.Servers)
			cfg.Logger = logger
			cfg.Version = version
			return agent.Run(c.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the agent's identity, spool and state (required)")
	f.StringVar(&cfg.Unit, "unit", "", "this unit's name (required; no dots, spaces or wildcards)")
	f.StringSliceVar(&cfg.Servers, "server", nil, "NATS URL of the control plane; repeat or comma-separate for several (required)")
	f.StringVar(&cfg.Token, "token", "", "one-time enrolment token (first start only)")
	f.StringArrayVar(&cfg.Allow, "allow", nil, "program shellcommand and process may run, exact name or path (repeatable)")
	f.StringArrayVar(&syslog, "syslog", nil, "log to offer for syslogforwarding, as name=/absolute/path (repeatable)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat", cfg.HeartbeatInterval, "interval between heartbeats (0 disables)")
	f.DurationVar(&cfg.MaxCommandDuration, "max-command-duration", cfg.MaxCommandDuration, "longest a shellcommand may run (it also stops at its deadline)")
	f.Int64Var(&cfg.SpoolCompactBytes, "spool-compact-bytes", cfg.SpoolCompactBytes, "size in bytes above which a fully acknowledged spool starts a new generation and deletes the old")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// applyEnv sets each flag not given on the command line from its
// environment variable, if set.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		v, ok := os.LookupEnv(envName(fl.Name))
		if fl.Changed || !ok || fl.Name == "help" || fl.Name == "version" {
			return
		}
		var err error
		if sv, isSlice := fl.Value.(pflag.SliceValue); isSlice {
			err = sv.Replace(splitList([]string{v}))
		} else {
			err = fl.Value.Set(v)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", envName(fl.Name), err))
		}
	})
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// splitList splits comma-separated entries and drops empty ones.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
