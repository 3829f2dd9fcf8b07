package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/logbook-fleet/logbook/test/edge"
)

// Simulated agents run in a process of their own, as units do on their own
// machines: the control plane's process then holds only what it holds in
// production (the NATS server's side of each connection, the entities, the
// dispatcher), and its garbage collector marks only that. With 1,000
// agents in the control plane's process, their client goroutines and
// buffers made most of its heap and stacks (7,000 goroutines, 72 MB), and
// each GC took ~43 ms of CPU out of two cores: the command-rtt tail was
// those GCs, not the edge link. The fleet process is this same binary,
// started with fleetEnv set; it reads a fleetSpec on stdin, connects the
// agents, prints "ready", and runs until its stdin closes.

const fleetEnv = "LOGBOOK_BENCH_FLEET"

// fleetSpec is what the fleet process is told: where to connect, and each
// agent's unit credentials.
type fleetSpec struct {
	URL       string   `json:"url"`
	From      int      `json:"from"` // the first unit's number (edge.UnitName)
	Passwords []string `json:"passwords"`
	Public    []byte   `json:"public"` // the control plane's command-signing key
	Heartbeat bool     `json:"heartbeat"`
	Workers   int      `json:"workers"` // connecting in parallel
}

// fleetProc is a running fleet process.
type fleetProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan error
}

// startFleet starts a fleet process with the agents of units
// from..from+len(passwords)-1 and returns once all are connected (and have
// sent a heartbeat, if asked).
func startFleet(ctx context.Context, cp *edge.ControlPlane, from int, passwords []string, heartbeat bool) (*fleetProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fleetEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fleet: start: %w", err)
	}
	f := &fleetProc{cmd: cmd, stdin: stdin, exited: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
		f.exited <- cmd.Wait()
	}()
	spec := fleetSpec{URL: cp.URL(), From: from, Passwords: passwords, Public: cp.Public(), Heartbeat: heartbeat, Workers: 32}
	if err := json.NewEncoder(stdin).Encode(spec); err != nil {
		return nil, errors.Join(fmt.Errorf("fleet: send spec: %w", err), f.close())
	}
	select {
	case line := <-lines:
		if line != "ready" {
			return nil, errors.Join(fmt.Errorf("fleet: %d agents did not connect: %q", len(passwords), line), f.close())
		}
		return f, nil
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), f.close())
	}
}

// close ends the fleet process: its agents disconnect when its stdin
// closes; a process that does not exit within a minute is killed.
func (f *fleetProc) close() error {
	f.stdin.Close()
	select {
	case err := <-f.exited:
		return err
	case <-time.After(time.Minute):
		f.cmd.Process.Kill()
		return fmt.Errorf("fleet: process %d killed after a minute: %w", f.cmd.Process.Pid, <-f.exited)
	}
}

// rss returns the fleet process's resident set.
func (f *fleetProc) rss() int64 { return vmRSS(strconv.Itoa(f.cmd.Process.Pid)) }

// runFleet is the fleet process's main.
func runFleet() int {
	var spec fleetSpec
	in := bufio.NewReader(os.Stdin)
	if err := json.NewDecoder(in).Decode(&spec); err != nil {
		fmt.Printf("error: read spec: %v\n", err)
		return 1
	}
	if len(spec.Public) != ed25519.PublicKeySize {
		fmt.Printf("error: public key of %d bytes\n", len(spec.Public))
		return 1
	}
	ctx := context.Background()
	agents := make([]*edge.Agent, len(spec.Passwords))
	err := edge.Parallel(ctx, max(1, spec.Workers), len(spec.Passwords), func(i int) error {
		a, err := edge.Connect(ctx, spec.URL, edge.UnitName(spec.From+i), spec.Passwords[i], ed25519.PublicKey(spec.Public), spec.Heartbeat)
		agents[i] = a
		return err
	})
	defer edge.CloseFleet(agents)
	if err != nil {
		fmt.Printf("error: %v\n", err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, in) // until the parent closes stdin (or exits)
	for _, a := range agents {
		if err := a.Err(); err != nil {
			fmt.Fprintf(os.Stderr, "fleet: agent %s: %v\n", a.Name, err)
			return 1
		}
	}
	return 0
}
