package cluster_test

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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-fleet/logbook/test/testnet"
)

// The clusternode binary, built once for every test of the package.
var nodeBin struct {
	once      sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if nodeBin.dir != "" {
		os.RemoveAll(nodeBin.dir)
	}
	os.Exit(code)
}

// buildNode compiles clusternode, once.
func buildNode(t *testing.T) string {
	t.Helper()
	nodeBin.once.Do(func() {
		if nodeBin.dir, nodeBin.err = os.MkdirTemp("", "clusternode-"); nodeBin.err != nil {
			return
		}
		nodeBin.path = filepath.Join(nodeBin.dir, "clusternode")
		cmd := exec.Command("go", "build", "-o", nodeBin.path, "./clusternode")
		cmd.Stderr = os.Stderr
		nodeBin.err = cmd.Run()
	})
	if nodeBin.err != nil {
		t.Fatalf("go build clusternode: %v", nodeBin.err)
	}
	return nodeBin.path
}

// proc is one node process; it keeps its id, directory, addresses and
// flags across restarts.
type proc struct {
	id, dir, raft, http string
	// args are passed on every start, after the common ones.
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *proc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// cluster is a set of node processes on loopback, each with its raft and
// HTTP address chosen before any starts (peers must know each other's).
type cluster struct {
	t     *testing.T
	bin   string
	nodes []*proc
}

// newCluster prepares n nodes without starting them: set their args (or
// put a network between them) first, then call launch.
func newCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t, bin: buildNode(t)}
	for i := range n {
		c.nodes = append(c.nodes, &proc{id: fmt.Sprintf("n%d", i+1), dir: t.TempDir(), raft: testnet.FreeAddr(t), http: testnet.FreeAddr(t)})
	}
	t.Cleanup(func() {
		for _, p := range c.nodes {
			c.kill(p)
		}
	})
	return c
}

// launch bootstraps the cluster on the first node and joins the others
// through it.
func (c *cluster) launch() {
	c.t.Helper()
	c.start(c.nodes[0], "-bootstrap")
	for _, p := range c.nodes[1:] {
		c.start(p, "-join", c.nodes[0].raft)
	}
}

// start runs p and waits until it is ready.
func (c *cluster) start(p *proc, extra ...string) {
	c.t.Helper()
	args := append([]string{"-id", p.id, "-dir", p.dir, "-raft", p.raft, "-http", p.http}, p.args...)
	cmd := exec.Command(c.bin, append(args, extra...)...)
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

// leader waits until one of among (every live node if none) says it
// leads. Right after a partition the isolated old leader may still say
// so: pass the others.
func (c *cluster) leader(among ...*proc) *proc {
	c.t.Helper()
	if len(among) == 0 {
		among = c.nodes
	}
	var found *proc
	waitFor(c.t, 60*time.Second, "a leader", func() bool {
		for _, p := range among {
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

// others is every node but p.
func (c *cluster) others(p *proc) []*proc {
	var out []*proc
	for _, q := range c.nodes {
		if q != p {
			out = append(out, q)
		}
	}
	return out
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

// appended is clusternode's answer to POST /append.
type appended struct {
	FirstVersion  uint64 `json:"first_version"`
	FirstPosition uint64 `json:"first_position"`
	Hash          string `json:"hash"`
	Error         string `json:"error"`
}

// appendVia appends one event with id to stream at exactly version expect
// through p. err is set when no answer came (the client gave up, the node
// is gone); otherwise code is the HTTP status (200, 409 wrong expected
// version, 400 invalid, 503 anything else).
func appendVia(ctx context.Context, p *proc, stream string, expect uint64, id uuid.UUID) (res appended, code int, err error) {
	body, _ := json.Marshal(map[string]any{"stream": stream, "expect": expect, "id": id})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.http+"/append", bytes.NewReader(body))
	if err != nil {
		return res, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return res, 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, 0, fmt.Errorf("append through %s: %s: %w", p.id, resp.Status, err)
	}
	return res, resp.StatusCode, nil
}

// mustAppend appends through p, which must acknowledge it (retrying while
// the cluster elects a leader).
func mustAppend(t *testing.T, p *proc, stream string, expect uint64, id uuid.UUID) appended {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		res, code, err := appendVia(ctx, p, stream, expect, id)
		switch {
		case err == nil && code == http.StatusOK:
			return res
		case err == nil && code != http.StatusServiceUnavailable:
			t.Fatalf("append to %s at %d through %s: %d %s", stream, expect, p.id, code, res.Error)
		case ctx.Err() != nil:
			t.Fatalf("append to %s at %d through %s: no acknowledgement within a minute (%v %d %s)", stream, expect, p.id, err, code, res.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ack is an acknowledged append: where the cluster said its event went.
type ack struct {
	id       uuid.UUID
	stream   string
	version  uint64
	position uint64
	hash     string
}

// load runs writers, each appending one event per call with the exact
// expected version to its own stream, through the nodes in turn. A call
// that gets no answer (its node was killed or cut off) is retried with the
// same event id on another node until one acknowledges it: appends are
// idempotent on ids, so an append never lands twice and none is lost. A
// writer leaves a node that gave no answer alone for a while, as a client
// with several addresses would, so that a cut-off node does not stall it.
type load struct {
	c     *cluster
	mu    sync.Mutex
	acks  []ack
	count atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
	fails chan error
	// gate is held shared by every append call and exclusively by pause.
	gate sync.RWMutex
}

// avoidFor is how long a writer leaves a node that gave no answer alone.
const avoidFor = 5 * time.Second

func (c *cluster) startLoad(writers int) *load {
	g := &load{c: c, stop: make(chan struct{}), fails: make(chan error, writers)}
	for w := range writers {
		g.wg.Add(1)
		go g.write(w)
	}
	return g
}

func (g *load) write(w int) {
	defer g.wg.Done()
	nodes := g.c.nodes
	stream := fmt.Sprintf("proc-w%d", w)
	avoid := make(map[*proc]time.Time)
	var version uint64
	for k := 0; ; k++ {
		id := uuid.Must(uuid.NewV7())
		for attempt := 0; ; attempt++ {
			select {
			case <-g.stop:
				return
			default:
			}
			if attempt > 0 && attempt%len(nodes) == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			p := nodes[(w+k+attempt)%len(nodes)]
			if !p.alive() || time.Now().Before(avoid[p]) {
				continue
			}
			g.gate.RLock()
			res, code, err := appendVia(context.Background(), p, stream, version, id)
			g.gate.RUnlock()
			if err != nil {
				avoid[p] = time.Now().Add(avoidFor)
				continue
			}
			if code == http.StatusConflict {
				g.fails <- fmt.Errorf("%s: append at %d through %s: %s", stream, version, p.id, res.Error)
				return
			}
			if code == http.StatusBadRequest {
				g.fails <- fmt.Errorf("%s: append at %d through %s: %s", stream, version, p.id, res.Error)
				return
			}
			if code != http.StatusOK {
				continue
			}
			if res.FirstVersion != version+1 {
				g.fails <- fmt.Errorf("%s: append at %d acknowledged at version %d", stream, version, res.FirstVersion)
				return
			}
			version++
			g.mu.Lock()
			g.acks = append(g.acks, ack{id, stream, version, res.FirstPosition, res.Hash})
			g.mu.Unlock()
			g.count.Add(1)
			break
		}
	}
}

// progress waits until at least n more appends are acknowledged.
func (g *load) progress(n int64, what string) {
	g.c.t.Helper()
	target := g.count.Load() + n
	waitFor(g.c.t, 90*time.Second, fmt.Sprintf("%d acknowledged appends %s", n, what), func() bool {
		select {
		case err := <-g.fails:
			g.c.t.Fatal(err)
		default:
		}
		return g.count.Load() >= target
	})
}

// pause waits for the append calls in flight and holds back new ones until
// resume.
func (g *load) pause() { g.gate.Lock() }

func (g *load) resume() { g.gate.Unlock() }

// finish stops the writers and returns every acknowledged append.
func (g *load) finish() []ack {
	g.c.t.Helper()
	close(g.stop)
	g.wg.Wait()
	select {
	case err := <-g.fails:
		g.c.t.Fatal(err)
	default:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.acks
}

// logEvent is one event as clusternode's GET /events reports it.
type logEvent struct {
	ID       uuid.UUID `json:"id"`
	Stream   string    `json:"stream"`
	Version  uint64    `json:"version"`
	Position uint64    `json:"position"`
	Hash     string    `json:"hash"`
}

// checkLog waits until every node reports the same verified head, then
// checks that they all hold the same log, with every acknowledged append
// exactly once, where it was acknowledged. It returns the log.
func (c *cluster) checkLog(acks []ack) []logEvent {
	c.t.Helper()
	var want head
	waitFor(c.t, 90*time.Second, "every node at the same verified head", func() bool {
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
	var first []logEvent
	for i, p := range c.nodes {
		var evs []logEvent
		if err := getJSON(p.http, "/events", &evs); err != nil {
			c.t.Fatal(err)
		}
		if uint64(len(evs)) != want.Position {
			c.t.Fatalf("%s holds %d events, head is %d", p.id, len(evs), want.Position)
		}
		if i == 0 {
			first = evs
		}
		for j := range evs {
			if evs[j] != first[j] {
				c.t.Fatalf("%s and %s differ at position %d: %+v, %+v", c.nodes[0].id, p.id, j+1, first[j], evs[j])
			}
		}
		byID := make(map[uuid.UUID]int, len(evs))
		for i, ev := range evs {
			if ev.Position != uint64(i+1) {
				c.t.Fatalf("%s: event %d of the log is at position %d", p.id, i+1, ev.Position)
			}
			if _, dup := byID[ev.ID]; dup {
				c.t.Fatalf("%s: event %s twice", p.id, ev.ID)
			}
			byID[ev.ID] = i
		}
		for _, a := range acks {
			i, ok := byID[a.id]
			if !ok {
				c.t.Fatalf("%s: acknowledged append %s to %s v%d is missing", p.id, a.id, a.stream, a.version)
			}
			if ev := evs[i]; ev.Stream != a.stream || ev.Version != a.version || ev.Position != a.position || ev.Hash != a.hash {
				c.t.Fatalf("%s: acknowledged append %s at %s v%d pos %d, log has %s v%d pos %d", p.id, a.id, a.stream, a.version, a.position, ev.Stream, ev.Version, ev.Position)
			}
		}
	}
	return first
}

// status is what clusternode's GET /status reports (cluster/raft's Status).
type status struct {
	LeaderID string
	Members  []member
}

type member struct {
	ID           string
	LastLogIndex uint64
}

// snapshotIndexes lists the raft indexes of p's completed raft snapshots,
// from their directory names (term-index-milliseconds) in <dir>/snapshots.
func snapshotIndexes(t *testing.T, p *proc) []uint64 {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(p.dir, "snapshots"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range ents {
		var term, index, msec uint64
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if _, err := fmt.Sscanf(e.Name(), "%d-%d-%d", &term, &index, &msec); err == nil {
			out = append(out, index)
		}
	}
	return out
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
