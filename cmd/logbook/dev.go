package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/agent"
	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// devUnits are the simulated units of `logbook dev`: name and labels.
var devUnits = []struct {
	name   string
	labels map[string]string
}{
	{"ship1", map[string]string{"site": "north-sea", "role": "vessel"}},
	{"ship2", map[string]string{"site": "north-sea", "role": "vessel"}},
	{"gateway1", map[string]string{"site": "harbour", "role": "gateway"}},
}

// devAllow is what the simulated units' agents may run.
var devAllow = []string{"uname", "uptime", "date", "hostname", "echo", "df", "true", "false", "sleep"}

func newDevCommand() *cobra.Command {
	cfg := serveConfig{}
	var units int
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a control plane with three simulated units (what make run starts)",
		Long: `dev runs logbook serve together with simulated edge units, each a real
Logbook agent (the same code as logbook-agent) running in this process with
its own data directory, enrolled with a one-time token and connected over
NATS with its own credentials. The units are registered on first start with
labels (ship1, ship2: site=north-sea,role=vessel; gateway1:
site=harbour,role=gateway); their agents may run: ` + strings.Join(devAllow, ", ") + `.

Everything lives in --data-dir (default ./logbook-dev), so a second run keeps
the history, the units' identities and the admin token. Delete the directory
to start afresh. Every serve flag applies.`,
		Example: `  logbook dev
  # in another terminal:
  logbook --data-dir logbook-dev unit ls
  logbook --data-dir logbook-dev cmd run ship1 -- uname -a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags(), os.LookupEnv); err != nil {
				return newUsageError(cmd, err)
			}
			if units < 0 || units > len(devUnits) {
				return usageErrorf(cmd, "--units %d: want 0 to %d", units, len(devUnits))
			}
			return dev(cmd.Context(), cfg, units, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addNodeFlags(f, &cfg, nodeDefaults{dataDir: "./logbook-dev", natsListen: "127.0.0.1:4250", logLevel: "warn"})
	f.IntVar(&units, "units", len(devUnits), "how many simulated units to run")
	return cmd
}

// dev runs a node and the simulated units until ctx ends.
func dev(ctx context.Context, cfg serveConfig, units int, stdout, stderr io.Writer) error {
	start := time.Now()
	if err := cfg.resolve(); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	n, err := startNode(ctx, cfg, logger)
	if err != nil {
		return err
	}
	agentsCtx, stopAgents := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stopAgents()
		wg.Wait()
	}()
	for _, u := range devUnits[:units] {
		a, err := n.startDevUnit(ctx, u.name, u.labels, logger)
		if err != nil {
			return errors.Join(err, n.shutdown(cfg.ShutdownTimeout))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-agentsCtx.Done()
			if err := a.Close(); err != nil {
				logger.Warn("simulated unit stopped with an error", "unit", u.name, "err", err)
			}
		}()
	}
	if err := n.waitConnected(ctx, units); err != nil {
		stopAgents()
		wg.Wait()
		return errors.Join(err, n.shutdown(cfg.ShutdownTimeout))
	}
	printDevBanner(stdout, n, units, time.Since(start))
	if cfg.ready != nil {
		cfg.ready(n)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-n.failed:
		logger.Error("a component failed; shutting down", "err", runErr)
	}
	fmt.Fprintln(stdout, "shutting down...")
	stopAgents()
	wg.Wait()
	return errors.Join(runErr, n.shutdown(cfg.ShutdownTimeout))
}

// startDevUnit registers the unit if needed and starts its agent in this
// process, enrolling it on first start.
func (n *node) startDevUnit(ctx context.Context, name string, labels map[string]string, logger *slog.Logger) (*agent.Agent, error) {
	stream := unit.Category + "-" + name
	md := events.Metadata{Principal: "logbook-dev"}
	if _, err := n.host.Execute(ctx, stream, &logbookv1.RegisterUnit{Platform: "linux/amd64", Labels: labels}, md); err != nil && !errors.Is(err, unit.ErrAlreadyRegistered) {
		return nil, fmt.Errorf("register simulated unit %s: %w", name, err)
	}
	dir := filepath.Join(n.cfg.DataDir, "units", name)
	cfg := agent.DefaultConfig()
	cfg.DataDir, cfg.Unit, cfg.Servers = dir, name, n.natsURLs
	cfg.Allow = devAllow
	cfg.HeartbeatInterval = 10 * time.Second
	cfg.Version = "dev"
	cfg.Logger = logger.With("unit", name)
	if !agent.Enrolled(dir) {
		tok, err := n.enroller.IssueToken(ctx, name, 10*time.Minute)
		if err != nil {
			return nil, fmt.Errorf("enrolment token for %s: %w", name, err)
		}
		cfg.Token = tok
	}
	a, err := agent.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start the agent of simulated unit %s: %w", name, err)
	}
	return a, nil
}

// waitConnected waits until want units are connected to the bridge.
func (n *node) waitConnected(ctx context.Context, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		got := 0
		for _, u := range devUnits[:want] {
			if b := n.bridge.Load(); b != nil && b.Connected(u.name) {
				got++
			}
		}
		if got == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("simulated units: %d of %d connected: %w", got, want, ctx.Err())
		case <-t.C:
		}
	}
}

func printDevBanner(w io.Writer, n *node, units int, took time.Duration) {
	exe := "logbook"
	if len(os.Args) > 0 && strings.Contains(os.Args[0], string(os.PathSeparator)) && !strings.Contains(os.Args[0], "go-build") {
		exe = os.Args[0] // ./bin/logbook under make run
	}
	names := make([]string, 0, units)
	for _, u := range devUnits[:units] {
		names = append(names, u.name)
	}
	fmt.Fprintf(w, `Logbook is running (ready in %v).

  API        %s
  NATS       %s
  data       %s
  token      %s
  units      %s (connected)

Try, in another terminal (the CLI finds the admin token through LOGBOOK_DATA):

  export LOGBOOK_DATA=%s
  %[8]s unit ls
  %[8]s cmd run --selector role=vessel -- uname -sr
  %[8]s audit unit-ship1

Ctrl-C stops everything.
`, took.Round(time.Millisecond), n.apiURL, strings.Join(n.natsURLs, ", "), n.cfg.DataDir, n.cfg.AdminTokenFile,
		strings.Join(names, ", "), n.cfg.DataDir, exe)
}
