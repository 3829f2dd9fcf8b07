// Package e2e tests Logbook end to end through its real binaries: a
// `logbook serve` process on :0 ports, real `logbook-agent` processes, and
// the `logbook` CLI, as an operator would use them.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logbook-fleet/logbook/test/testnet"
)

// bin holds the binaries TestMain builds.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "logbook-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "github.com/logbook-fleet/logbook/cmd/logbook", "github.com/logbook-fleet/logbook/cmd/logbook-agent")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer collects a process's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// server is a running `logbook serve` process.
type server struct {
	cmd  *exec.Cmd
	data string
	api  string
	nats string
	log  *lockedBuffer
	// token, when set, is passed to the CLI (otherwise the CLI finds the
	// admin token in the data directory).
	token    string
	exited   chan struct{}
	exitErr  error
	stopOnce sync.Once
}

// freePort returns a loopback port for a process to bind later.
func freePort(t *testing.T) int { return testnet.FreePort(t) }

// startServer runs `logbook serve` on data with the API on a random port
// and NATS on natsPort (0: random), and waits until it logs that it serves.
func startServer(t *testing.T, data string, natsPort int, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data-dir", data, "--listen", "127.0.0.1:0",
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--log-format", "json", "--log-level", "info"}, extra...)
	s := &server{data: data, log: &lockedBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(filepath.Join(bin, "logbook"), args...)
	s.cmd.Env = cleanEnv()
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = s.log.Write(append(append([]byte(nil), line...), '\n'))
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "logbook serving" {
				select {
				case ready <- rec:
				default:
				}
			}
		}
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(s.log.String()), "\n")
			t.Logf("logbook serve %s, last lines of its log:\n%s", data, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	select {
	case rec := <-ready:
		s.api, _ = rec["api"].(string)
		s.nats, _ = rec["nats"].(string)
	case <-s.exited:
		t.Fatalf("logbook serve exited before serving (%v):\n%s", s.exitErr, s.log)
	case <-time.After(time.Minute):
		t.Fatalf("logbook serve did not start in a minute:\n%s", s.log)
	}
	if s.api == "" || s.nats == "" {
		t.Fatalf("start-up line without api/nats URLs:\n%s", s.log)
	}
	return s
}

// cleanEnv is the environment without LOGBOOK_ variables of the caller.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOGBOOK_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		t.Fatalf("logbook serve did not stop within a minute of SIGTERM:\n%s", s.log)
	}
	if s.exitErr != nil {
		t.Fatalf("logbook serve exited with %v after SIGTERM:\n%s", s.exitErr, s.log)
	}
}

func (s *server) kill() {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the logbook CLI against s with the admin token found through
// the data directory.
func (s *server) cli(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	global := []string{"--server", s.api, "--data-dir", s.data}
	if s.token != "" {
		global = append(global, "--token", s.token)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "logbook"), append(global, args...)...)
	cmd.Env = append(cleanEnv(), "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("logbook %v: %v", args, err)
	}
	return r
}

// ok runs the CLI and fails the test unless it exits 0.
func (s *server) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.cli(t, args...)
	if r.code != 0 {
		t.Fatalf("logbook %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// jsonOf runs the CLI with -o json and decodes its output.
func (s *server) jsonOf(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out := s.ok(t, append(args, "-o", "json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("logbook %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return m
}

// field returns m[name] trying the protojson camelCase and the proto
// snake_case spelling.
func field(m map[string]any, name string) any {
	if v, ok := m[name]; ok {
		return v
	}
	parts := strings.Split(name, "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return m[strings.Join(parts, "")]
}

// agentProc is a running logbook-agent.
type agentProc struct {
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{}
}

func startAgent(t *testing.T, dir, unitName, natsURL, token string) *agentProc {
	t.Helper()
	args := []string{"--data-dir", dir, "--unit", unitName, "--server", natsURL, "--allow", "echo", "--allow", "false",
		"--heartbeat", "1s", "--log-level", "debug"}
	if token != "" {
		args = append(args, "--token", token)
	}
	a := &agentProc{log: &lockedBuffer{}, exited: make(chan struct{})}
	a.cmd = exec.Command(filepath.Join(bin, "logbook-agent"), args...)
	a.cmd.Env = cleanEnv()
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(20 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			t.Logf("agent %s log:\n%s", unitName, a.log)
		}
	})
	return a
}

// eventually polls cond until it holds or a minute passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connected reports whether the fleet read model shows the unit connected.
func (s *server) connected(t *testing.T, unitName string) bool {
	r := s.cli(t, "unit", "ls", "-o", "json")
	if r.code != 0 {
		return false // e.g. the read model is still catching up
	}
	var resp map[string]any
	if json.Unmarshal([]byte(r.stdout), &resp) != nil {
		return false
	}
	units, _ := field(resp, "units").([]any)
	for _, u := range units {
		m, _ := u.(map[string]any)
		if field(m, "name") == unitName && field(m, "connected") == true {
			return true
		}
	}
	return false
}

func httpDo(t *testing.T, method, url, token, contentType string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
