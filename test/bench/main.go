// Command bench measures Logbook against its peers and physical limits.
//
// It prints a human table on stderr and one JSON object per measurement on
// stdout; see README.md and /BENCHMARKS.md for the contract.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Config is what every scenario gets. Scenarios never keep it beyond their run.
type Config struct {
	// Duration is how long each measurement runs, after Warmup.
	Duration time.Duration
	// Warmup runs the same load before the measured window, unrecorded.
	Warmup time.Duration
	// Quick asks scenarios for a smaller data set (the append scenario
	// must finish in under 60 s).
	Quick bool
	// Dir is this run's scratch directory; scenarios create one fresh
	// subdirectory per measurement with TempDir and remove it.
	Dir string
	// ReplayEvents overrides the replay scenario's data set size (0: default).
	ReplayEvents int
	// Postgres is the connection URL from LOGBOOK_BENCH_POSTGRES, or "".
	Postgres string
	// JetStreamAllWriters runs the JetStream peers with 1, 16 and 64
	// writers instead of 64 only.
	JetStreamAllWriters bool
	// Rounds is how many times each closed-loop measurement runs,
	// interleaved; the median round is reported (see RunCases).
	Rounds int
	// Subjects, when not empty, limits the measurements to these subjects.
	Subjects []string

	log io.Writer
}

// Wants reports whether measurements of subject should run.
func (c *Config) Wants(subject string) bool {
	return len(c.Subjects) == 0 || slices.Contains(c.Subjects, subject)
}

// TempDir creates a fresh directory for one measurement; the caller removes it.
func (c *Config) TempDir(name string) (string, error) {
	return os.MkdirTemp(c.Dir, name+"-")
}

// Logf prints a progress line on stderr.
func (c *Config) Logf(format string, args ...any) {
	fmt.Fprintf(c.log, "  "+format+"\n", args...)
}

type listFlag []string

func (s *listFlag) String() string { return strings.Join(*s, ",") }
func (s *listFlag) Set(v string) error {
	for _, name := range strings.Split(v, ",") {
		if name = strings.TrimSpace(name); name != "" {
			*s = append(*s, name)
		}
	}
	return nil
}

func main() {
	if os.Getenv(fleetEnv) != "" {
		os.Exit(runFleet()) // a fleet of simulated agents; see fleet.go
	}
	os.Exit(run())
}

func run() int {
	var names, subjects listFlag
	flag.Var(&names, "scenario", "scenario to run (repeatable or comma-separated; default: all): "+strings.Join(scenarioNames(), ", "))
	duration := flag.Duration("duration", 3*time.Second, "measured time per measurement (default 1s with -quick)")
	warmup := flag.Duration("warmup", -1, "unrecorded warm-up before each measurement (default duration/6, between 200ms and 1s)")
	quick := flag.Bool("quick", false, "short run: 1s per measurement, smaller data sets, JetStream at 64 writers only")
	dir := flag.String("dir", "", "parent directory for benchmark data (default: os.TempDir()); a fresh subdirectory is created and removed at the end")
	keep := flag.Bool("keep", false, "keep the data directory at the end (for inspection)")
	replayEvents := flag.Int("replay-events", 0, "events in the replay data set (default 1,000,000; 300,000 with -quick)")
	flag.Var(&subjects, "subject", "only measure these subjects (repeatable or comma-separated), e.g. logbook,fsync-limit; targets needing others show as missing")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memprofile := flag.String("memprofile", "", "write an allocation profile (go tool pprof -sample_index=alloc_space) of the whole run to this file at the end")
	rounds := flag.Int("rounds", 1, "run each append measurement this many times, interleaved, and report the median (steadier ratios on a noisy machine)")
	list := flag.Bool("list", false, "list the scenarios and exit")
	flag.Parse()

	if *list {
		for _, s := range registry {
			fmt.Printf("%-12s %s\n", s.Name, s.About)
		}
		return 0
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		return 2
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg := &Config{
		Duration:            *duration,
		Warmup:              *warmup,
		Quick:               *quick,
		ReplayEvents:        *replayEvents,
		Postgres:            os.Getenv("LOGBOOK_BENCH_POSTGRES"),
		JetStreamAllWriters: !*quick,
		Subjects:            subjects,
		Rounds:              *rounds,
		log:                 os.Stderr,
	}
	if *quick && !set["duration"] {
		cfg.Duration = time.Second
	}
	if cfg.Warmup < 0 {
		cfg.Warmup = min(max(cfg.Duration/6, 200*time.Millisecond), time.Second)
	}
	if cfg.Rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds must be at least 1")
		return 2
	}
	if cfg.Duration <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -duration must be positive")
		return 2
	}

	selected, err := selectScenarios(names)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}

	root, err := os.MkdirTemp(*dir, "logbook-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	cfg.Dir = root
	defer func() {
		if *keep {
			fmt.Fprintln(os.Stderr, "bench: data kept in", root)
			return
		}
		if err := os.RemoveAll(root); err != nil {
			fmt.Fprintln(os.Stderr, "bench: removing data:", err)
		}
	}()

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	if *memprofile != "" {
		defer func() {
			f, err := os.Create(*memprofile)
			if err == nil {
				err = errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: memory profile:", err)
			}
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	out := newReporter(os.Stdout, os.Stderr)
	status := 0
	for _, s := range selected {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "== %s: %s (duration %v, warm-up %v, data in %s)\n", s.Name, s.About, cfg.Duration, cfg.Warmup, root)
		results, err := s.Run(ctx, cfg)
		out.Results(s.Name, results)
		out.Targets(s.Name, evaluateTargets(s.Name, s.Targets, results))
		for _, r := range results {
			if r.Err != "" {
				status = 1
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", s.Name, err)
			status = 1
		}
		fmt.Fprintf(os.Stderr, "== %s took %.1fs\n\n", s.Name, time.Since(start).Seconds())
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted")
			return 130
		}
	}
	return status
}

func selectScenarios(names []string) ([]Scenario, error) {
	if len(names) == 0 {
		return registry, nil
	}
	var out []Scenario
	seen := map[string]bool{}
	for _, n := range names {
		s, ok := lookupScenario(n)
		if !ok {
			return nil, errors.New("unknown scenario " + fmt.Sprintf("%q", n) + "; known scenarios: " + strings.Join(scenarioNames(), ", "))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, s)
		}
	}
	return out, nil
}
