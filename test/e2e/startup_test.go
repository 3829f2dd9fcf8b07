package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runServe runs `logbook serve` expecting it to fail at start-up, and
// returns its exit code and output.
func runServe(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "logbook"), append([]string{"serve"}, args...)...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("logbook serve %v started; want a start-up error\n%s", args, out)
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatal(err)
	}
	return ee.ExitCode(), string(out)
}

// TestStartupErrors: the mistakes people make at start-up get a message
// that names the problem.
func TestStartupErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	readOnly := filepath.Join(t.TempDir(), "ro")
	if err := os.MkdirAll(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"api port taken", []string{"--data-dir", t.TempDir(), "--listen", taken.Addr().String(), "--nats-listen", "127.0.0.1:0"},
			[]string{"--listen", "in use"}},
		{"nats port taken", []string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--nats-listen", taken.Addr().String()},
			[]string{"NATS", "--nats-listen"}},
		{"bad read-model URL", []string{"--data-dir", t.TempDir(), "--read-models", "mysql://x"},
			[]string{"--read-models", "mysql"}},
		{"bad store URL", []string{"--data-dir", t.TempDir(), "--store", "esdb://x"},
			[]string{"--store", "esdb"}},
		{"bad log level", []string{"--data-dir", t.TempDir(), "--log-level", "loud"},
			[]string{"--log-level"}},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		cases = append(cases, struct {
			name string
			args []string
			want []string
		}{"data dir not writable", []string{"--data-dir", filepath.Join(readOnly, "sub"), "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"},
			[]string{"data directory"}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := runServe(t, c.args...)
			if code == 0 {
				t.Fatalf("exit 0")
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
