// Command clusternode runs one node of a cluster/raft cluster with a tiny
// HTTP API, for test/cluster's real-process fault tests (until
// `logbook serve --cluster` exists). It is not a server for production.
//
//	clusternode -id n1 -dir /tmp/n1 -raft 127.0.0.1:7401 -http 127.0.0.1:8401 -bootstrap
//	clusternode -id n2 -dir /tmp/n2 -raft 127.0.0.1:7402 -http 127.0.0.1:8402 -join 127.0.0.1:7401
//
// -dial-via 127.0.0.1:7402=127.0.0.1:9012,... makes the node dial each
// peer's address through another one (the tests put a proxy there that
// can cut the link); -snapshot-threshold, -trailing-logs and
// -snapshot-interval make raft snapshot and compact its log early.
//
// HTTP API (JSON):
//
//	POST /append {"stream","expect","id"}  append one event with id at exactly version expect
//	                                       (200: the result; 409: wrong expected version;
//	                                       400: an invalid append; 503: anything else, worth retrying)
//	GET  /head                             {"position","hash","leader"} of this node's replica
//	GET  /verify                           the replica's verified head
//	GET  /events                           every event: [{"id","stream","version","position","hash"}]
//	GET  /status                           the cluster as this node sees it
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	lbraft "github.com/logbook-fleet/logbook/cluster/raft"
	"github.com/logbook-fleet/logbook/events"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "clusternode:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := lbraft.DefaultConfig()
	var join, httpAddr, dialVia string
	flag.StringVar(&cfg.ID, "id", "", "node id")
	flag.StringVar(&cfg.Dir, "dir", "", "data directory")
	flag.StringVar(&cfg.Bind, "raft", "127.0.0.1:0", "raft and node-call address")
	flag.StringVar(&httpAddr, "http", "127.0.0.1:0", "HTTP address")
	flag.BoolVar(&cfg.Bootstrap, "bootstrap", false, "bootstrap a new cluster")
	flag.StringVar(&join, "join", "", "comma-separated addresses of members to join through")
	flag.StringVar(&dialVia, "dial-via", "", "comma-separated addr=via: dial via instead of addr")
	flag.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", cfg.SnapshotThreshold, "raft entries between snapshots")
	flag.Uint64Var(&cfg.TrailingLogs, "trailing-logs", cfg.TrailingLogs, "raft entries kept after a snapshot")
	flag.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", cfg.SnapshotInterval, "how often raft considers a snapshot")
	flag.Parse()
	if join != "" {
		cfg.Join = strings.Split(join, ",")
	}
	if dialVia != "" {
		via := make(map[string]string)
		for _, pair := range strings.Split(dialVia, ",") {
			addr, to, ok := strings.Cut(pair, "=")
			if !ok {
				return fmt.Errorf("-dial-via %q: want addr=via", pair)
			}
			via[addr] = to
		}
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			if to, ok := via[addr]; ok {
				addr = to
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	node, err := lbraft.Open(openCtx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer node.Close()

	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(node), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Printf("ready raft=%s http=%s\n", node.Addr(), ln.Addr())
	select {
	case <-ctx.Done():
	case <-node.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	return node.Close()
}

type eventJSON struct {
	ID       uuid.UUID `json:"id"`
	Stream   string    `json:"stream"`
	Version  uint64    `json:"version"`
	Position uint64    `json:"position"`
	Hash     string    `json:"hash"`
}

func handler(node *lbraft.Node) http.Handler {
	st := node.Store()
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, err error) {
		code := http.StatusServiceUnavailable
		switch {
		case errors.Is(err, events.ErrWrongExpectedVersion):
			code = http.StatusConflict
		case errors.Is(err, events.ErrInvalidStreamName), errors.Is(err, events.ErrInvalidEvent), errors.Is(err, events.ErrDuplicateEventID):
			// Retrying cannot help: a test that sees these has a bug.
			code = http.StatusBadRequest
		}
		reply(w, code, map[string]string{"error": err.Error()})
	}
	mux.HandleFunc("POST /append", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream string    `json:"stream"`
			Expect uint64    `json:"expect"`
			ID     uuid.UUID `json:"id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		ev := events.Event{ID: req.ID, Type: "logbook.test.Appended", Data: []byte(req.ID.String())}
		res, err := st.Append(r.Context(), req.Stream, events.Exactly(req.Expect), ev)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, map[string]any{
			"first_version": res.FirstVersion, "first_position": res.FirstPosition, "hash": res.Hash.String(),
		})
	})
	mux.HandleFunc("GET /head", func(w http.ResponseWriter, r *http.Request) {
		h, err := st.Head(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, map[string]any{"position": h.Position, "hash": h.Hash.String(), "leader": node.IsLeader()})
	})
	mux.HandleFunc("GET /verify", func(w http.ResponseWriter, r *http.Request) {
		h, err := st.Verify(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, map[string]any{"position": h.Position, "hash": h.Hash.String()})
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		var out []eventJSON
		for ev, err := range st.ReadAll(r.Context(), 0, events.Filter{}) {
			if err != nil {
				fail(w, err)
				return
			}
			out = append(out, eventJSON{ev.ID, ev.Stream, ev.Version, ev.Position, ev.Hash.String()})
		}
		reply(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		s, err := node.Status(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, s)
	})
	return mux
}
