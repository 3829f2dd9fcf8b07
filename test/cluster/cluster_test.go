package cluster_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/test/testnet"
)

// buildNode compiles clusternode into a temporary directory.
func buildNode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "clusternode")
	cmd := exec.Command("go", "build", "-o", bin, "./clusternode")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build clusternode: %v", err)
	}
	return bin
}

// freeAddr returns a loopback address for a node to bind later.
func freeAddr(t *testing.T) string { return testnet.FreeAddr(t) }

// proc is one node process; it keeps its id, directory and addresses across
// restarts.
type proc struct {
	id, dir, raft, http string
	mu                  sync.Mutex
	cmd                 *exec.Cmd
	exited              chan struct{}
}

type cluster struct {
	t     *testing.T
	bin   string
	nodes []*proc
}

func (c *cluster) start(p *proc, args ...string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"-id", p.id, "-dir", p.dir, "-raft", p.raft, "-http", p.http}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", p.id, err)
	}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, out)
	}()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "ready") {
			c.t.Fatalf("%s: unexpected first line %q", p.id, line)
		}
	case <-exited:
		c.t.Fatalf("%s exited during start", p.id)
	case <-time.After(90 * time.Second):
		c.t.Fatalf("%s not ready within 90s", p.id)
	}
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
}

// kill sends SIGKILL and waits for the process to go.
func (c *cluster) kill(p *proc) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

func (p *proc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

var client = &http.Client{Timeout: 5 * time.Second}

func getJSON(addr, path string, v any) error {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type head struct {
	Position uint64 `json:"position"`
	Hash     string `json:"hash"`
	Leader   bool   `json:"leader"`
}

type ack struct {
	id       uuid.UUID
	stream   string
	version  uint64
	position uint64
	hash     string
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKillLeaderProcesses(t *testing.T) {
	rounds := 3
	if os.Getenv("LOGBOOK_CLUSTER_LONG") != "" {
		rounds = 20
	}
	c := &cluster{t: t, bin: buildNode(t)}
	for i := range 3 {
		c.nodes = append(c.nodes, &proc{id: fmt.Sprintf("n%d", i+1), dir: t.TempDir(), raft: freeAddr(t), http: freeAddr(t)})
	}
	t.Cleanup(func() {
		for _, p := range c.nodes {
			c.kill(p)
		}
	})
	c.start(c.nodes[0], "-bootstrap")
	c.start(c.nodes[1], "-join", c.nodes[0].raft)
	c.start(c.nodes[2], "-join", c.nodes[0].raft)

	// Writers: each appends to its own stream with the exact version,
	// through any live node, retrying the same event id until it is
	// acknowledged (appends are idempotent on ids).
	var (
		mu    sync.Mutex
		acks  []ack
		count atomic.Int64
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		fails = make(chan error, 8)
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("proc-w%d", w)
			var version uint64
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				id := uuid.Must(uuid.NewV7())
				body, _ := json.Marshal(map[string]any{"stream": stream, "expect": version, "id": id})
				for attempt := 0; ; attempt++ {
					p := c.nodes[(w+k+attempt)%len(c.nodes)]
					if !p.alive() {
						continue
					}
					resp, err := client.Post("http://"+p.http+"/append", "application/json", bytes.NewReader(body))
					if err != nil {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					var out struct {
						FirstVersion  uint64 `json:"first_version"`
						FirstPosition uint64 `json:"first_position"`
						Hash          string `json:"hash"`
						Error         string `json:"error"`
					}
					json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						if out.FirstVersion != version+1 {
							fails <- fmt.Errorf("%s: append at %d acknowledged at version %d", stream, version, out.FirstVersion)
							return
						}
						version++
						mu.Lock()
						acks = append(acks, ack{id, stream, version, out.FirstPosition, out.Hash})
						mu.Unlock()
						count.Add(1)
						break
					}
					if resp.StatusCode == http.StatusConflict {
						fails <- fmt.Errorf("%s: append at %d through %s: %s", stream, version, p.id, out.Error)
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	progress := func(n int64, what string) {
		t.Helper()
		target := count.Load() + n
		waitFor(t, 60*time.Second, fmt.Sprintf("%d acknowledged appends %s", n, what), func() bool {
			select {
			case err := <-fails:
				t.Fatal(err)
			default:
			}
			return count.Load() >= target
		})
	}
	leader := func() *proc {
		var found *proc
		waitFor(t, 30*time.Second, "a leader", func() bool {
			for _, p := range c.nodes {
				var h head
				if p.alive() && getJSON(p.http, "/head", &h) == nil && h.Leader {
					found = p
					return true
				}
			}
			return false
		})
		return found
	}

	for r := range rounds {
		progress(100, fmt.Sprintf("before kill %d", r+1))
		l := leader()
		killed := time.Now()
		c.kill(l)
		progress(1, "after the kill")
		t.Logf("round %d: killed leader %s; first append acknowledged %v later", r+1, l.id, time.Since(killed).Round(time.Millisecond))
		progress(100, "with the leader down")
		c.start(l) // rejoins with its existing state
	}
	progress(100, "with every node back")
	close(stop)
	wg.Wait()
	select {
	case err := <-fails:
		t.Fatal(err)
	default:
	}

	// Every node converges to the same verified head...
	var want head
	waitFor(t, 60*time.Second, "every node at the same head", func() bool {
		for i, p := range c.nodes {
			var h head
			if getJSON(p.http, "/verify", &h) != nil {
				return false
			}
			if i == 0 {
				want = h
			} else if h.Position != want.Position || h.Hash != want.Hash {
				return false
			}
		}
		return true
	})
	// ...holding every acknowledged append exactly once, where it was
	// acknowledged.
	for _, p := range c.nodes {
		var evs []struct {
			ID       uuid.UUID `json:"id"`
			Stream   string    `json:"stream"`
			Version  uint64    `json:"version"`
			Position uint64    `json:"position"`
			Hash     string    `json:"hash"`
		}
		if err := getJSON(p.http, "/events", &evs); err != nil {
			t.Fatal(err)
		}
		if uint64(len(evs)) != want.Position {
			t.Fatalf("%s holds %d events, head is %d", p.id, len(evs), want.Position)
		}
		byID := make(map[uuid.UUID]int, len(evs))
		for i, ev := range evs {
			if _, dup := byID[ev.ID]; dup {
				t.Fatalf("%s: event %s twice", p.id, ev.ID)
			}
			byID[ev.ID] = i
		}
		for _, a := range acks {
			i, ok := byID[a.id]
			if !ok {
				t.Fatalf("%s: acknowledged append %s to %s v%d is missing", p.id, a.id, a.stream, a.version)
			}
			if ev := evs[i]; ev.Stream != a.stream || ev.Version != a.version || ev.Position != a.position || ev.Hash != a.hash {
				t.Fatalf("%s: acknowledged append %s at %s v%d pos %d, log has %s v%d pos %d", p.id, a.id, a.stream, a.version, a.position, ev.Stream, ev.Version, ev.Position)
			}
		}
	}
	t.Logf("%d appends acknowledged across %d SIGKILLs of the leader; head %d", len(acks), rounds, want.Position)
}
