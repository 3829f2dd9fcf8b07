package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/channel"
	"github.com/logbook-fleet/logbook/actors/process"
	"github.com/logbook-fleet/logbook/actors/release"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/agent"
	"github.com/logbook-fleet/logbook/api"
	"github.com/logbook-fleet/logbook/api/ingest"
	"github.com/logbook-fleet/logbook/cluster/bridge"
	lbraft "github.com/logbook-fleet/logbook/cluster/raft"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/dump"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	_ "github.com/logbook-fleet/logbook/projections/sinks" // sqlite://, postgres://
)

// node is one running control-plane node. startNode builds it in
// dependency order; shutdown takes it down in reverse.
type node struct {
	cfg    serveConfig
	logger *slog.Logger

	listener net.Listener
	// raft is the cluster member in cluster mode (nil on a single node);
	// store is then its replicated Store.
	raft     *lbraft.Node
	store    events.Store
	metered  *meteredStore
	host     *actors.Host
	key      ed25519.PrivateKey
	tokens   *api.Tokens
	creds    *bridge.LogCredentials
	enroller *bridge.Enroller
	nats     *bridge.Server // nil with an external NATS
	// local is the embedded log of a single node (nil in a cluster).
	local *embedded.Store
	nc    *nats.Conn
	// bridge is the running bridge: always on a single node, only on the
	// leader in a cluster (nil elsewhere).
	bridge atomic.Pointer[bridge.Bridge]
	// bridgeCfg and bridgeStore start the bridge (runBridge).
	bridgeCfg   bridge.Config
	bridgeStore events.Store
	sink        projections.Sink
	runner      *projections.Runner
	dumper      *dump.Dumper
	http        *http.Server
	registry    *prometheus.Registry

	// bg is cancelled at shutdown; it stops the node's own goroutines
	// (dumps, checkpoints), which wg waits for.
	bg     context.Context
	stopBg context.CancelFunc
	wg     sync.WaitGroup
	// failed receives the first fatal error of a component.
	failed chan error
	// URLs the node serves on, for the start-up banner, tests and dev.
	apiURL   string
	natsURLs []string

	closers []func() error
}

// startNode opens everything cfg names and starts serving. On error it
// closes what it opened and returns a message that says what to fix.
func startNode(ctx context.Context, cfg serveConfig, logger *slog.Logger) (n *node, err error) {
	n = &node{cfg: cfg, logger: logger, failed: make(chan error, 1), registry: prometheus.NewRegistry()}
	n.bg, n.stopBg = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = n.shutdown(cfg.ShutdownTimeout)
			n = nil
		}
	}()
	started := time.Now()
	cfg.Runtime.apply(logger)

	if err := ensureWritableDir(cfg.DataDir); err != nil {
		return n, fmt.Errorf("data directory: %w", err)
	}
	// Take the API port first: a port in use is the most common start-up
	// mistake and should not wait for the log to open.
	if n.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return n, fmt.Errorf("--listen %s: %w (is another logbook serve running? pick another address with --listen)", cfg.Listen, err)
	}
	n.apiURL = "http://" + displayAddr(n.listener.Addr())

	if err := n.openStore(ctx); err != nil {
		return n, err
	}
	n.metered = newMeteredStore(n.store, n.local)
	n.registry.MustRegister(n.metered, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var store events.Store = n.metered

	if cl := cfg.Cluster; cl.Enabled && len(cl.Join) > 0 {
		// Agents trust one key: a joining node must sign with the
		// cluster's, not a fresh one of its own.
		if _, err := os.Stat(cfg.SigningKey); errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("signing key %s: not found; every node of a cluster signs commands with the same key: copy signing.key from the data directory of an existing node, or pass --signing-key", cfg.SigningKey)
		}
	}
	if n.key, err = loadOrCreateKey(cfg.SigningKey); err != nil {
		return n, err
	}
	hostOpts := []actors.Option{actors.WithLogger(logger)}
	if n.raft != nil {
		// Every node hosts entities over the shared log: each command
		// first waits for the local replica to hold every acknowledged
		// append (a read barrier through the leader), then the entity
		// reads its stream's tail, so it decides on the log as it is.
		hostOpts = append(hostOpts, actors.WithCatchUp(func(ctx context.Context) error {
			_, err := n.raft.ReadBarrier(ctx)
			return err
		}))
	}
	if n.host, err = actors.NewHost(store, hostOpts...); err != nil {
		return n, err
	}
	n.closers = append(n.closers, n.host.Close)
	for _, k := range []actors.Kind{unit.Kind, process.Kind, release.Kind, channel.Kind} {
		if err := n.host.Register(k); err != nil {
			return n, err
		}
	}

	if n.tokens, err = api.OpenTokens(ctx, store, logger); err != nil {
		return n, fmt.Errorf("load API tokens: %w", err)
	}
	n.closers = append(n.closers, n.tokens.Close)
	if err := n.bootstrapAdmin(ctx); err != nil {
		return n, err
	}

	if err := n.startEdge(ctx, store); err != nil {
		return n, err
	}
	if err := n.startReadModels(ctx, store); err != nil {
		return n, err
	}
	if err := n.startDumps(ctx, store); err != nil {
		return n, err
	}
	if err := n.startHTTP(store); err != nil {
		return n, err
	}
	logger.Info("logbook serving",
		"api", n.apiURL, "nats", strings.Join(n.natsURLs, ","), "data", cfg.DataDir,
		"read_models", redactURL(cfg.ReadModels), "startup", time.Since(started).Round(time.Millisecond))
	return n, nil
}

// openStore opens the event log: the embedded store, or in cluster mode
// this node's raft member and its replicated store.
func (n *node) openStore(ctx context.Context) error {
	dir, _ := storePath(n.cfg.Store)
	if !n.cfg.Cluster.Enabled {
		st, err := embedded.Open(ctx, dir, embedded.WithLogger(n.logger))
		if err != nil {
			return fmt.Errorf("open the event log at %s: %w", dir, err)
		}
		n.local, n.store = st, st
		n.closers = append(n.closers, st.Close)
		return nil
	}
	cl := n.cfg.Cluster
	rcfg := lbraft.DefaultConfig()
	rcfg.ID, rcfg.Dir, rcfg.Bind, rcfg.Advertise = cl.NodeID, filepath.Join(n.cfg.DataDir, "cluster"), cl.Listen, cl.Advertise
	rcfg.Bootstrap, rcfg.Join = cl.Bootstrap, cl.Join
	rcfg.Logger = n.logger
	rcfg.StoreOptions = []embedded.Option{embedded.WithLogger(n.logger)}
	if len(cl.Join) > 0 {
		n.logger.Info("joining the cluster", "through", strings.Join(cl.Join, ","), "node", cl.NodeID)
	}
	node, err := lbraft.Open(ctx, rcfg)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.raft, n.store = node, node.Store()
	n.closers = append(n.closers, node.Close)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case <-node.Done():
			if err := node.Err(); err != nil {
				n.fail(fmt.Errorf("cluster member stopped: %w", err))
			}
		case <-n.bg.Done():
		}
	}()
	return nil
}

// displayAddr is addr with an unspecified host shown as 127.0.0.1, so the
// printed URL works from this machine.
func displayAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// ensureWritableDir creates dir if needed and proves it writable.
func ensureWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// loadOrCreateKey reads the control plane's ed25519 command-signing key
// (any form --signing-key of release publish takes: PKCS#8 PEM as openssl
// genpkey -algorithm ed25519 writes it, or a raw, hex or base64 seed),
// creating a PKCS#8 PEM key (mode 0600) on first start.
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := agent.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("write the signing key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the signing key: %w", err)
	}
	key, err := parseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return key, nil
}

// bootstrapAdmin creates the first admin token when the log has none and
// writes it to cfg.AdminTokenFile.
func (n *node) bootstrapAdmin(ctx context.Context) error {
	secret, created, err := n.tokens.Bootstrap(ctx, "admin")
	if err != nil {
		return fmt.Errorf("create the admin token: %w", err)
	}
	if !created {
		return nil
	}
	if err := agent.WriteFileAtomic(n.cfg.AdminTokenFile, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the admin token to %s: %w", n.cfg.AdminTokenFile, err)
	}
	n.logger.Info("created the admin token (shown once; keep it safe)", "file", n.cfg.AdminTokenFile)
	return nil
}

// startEdge starts NATS (embedded or external) and the bridge.
func (n *node) startEdge(ctx context.Context, store events.Store) error {
	creds, err := bridge.NewLogCredentials(ctx, store, bridge.WithCredentialsLogger(n.logger))
	if err != nil {
		return fmt.Errorf("load unit credentials: %w", err)
	}
	n.creds = creds
	n.closers = append(n.closers, creds.Close)

	if n.cfg.NATS == "embedded" {
		host, portStr, _ := net.SplitHostPort(n.cfg.NATSListen)
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return fmt.Errorf("--nats-listen %s: bad port", n.cfg.NATSListen)
		}
		scfg := bridge.DefaultServerConfig()
		scfg.Host, scfg.Logger = host, n.logger
		scfg.Port = port
		if port == 0 {
			scfg.Port = -1
		}
		scfg.AdvertiseURLs = n.cfg.NATSAdvertise
		if cl := n.cfg.Cluster; cl.Enabled && len(cl.NATSRoutes) > 0 {
			rhost, rport, err := net.SplitHostPort(cl.NATSListen)
			if err != nil {
				return fmt.Errorf("--nats-cluster-listen %s: %w", cl.NATSListen, err)
			}
			port, err := strconv.Atoi(rport)
			if err != nil {
				return fmt.Errorf("--nats-cluster-listen %s: bad port", cl.NATSListen)
			}
			scfg.Cluster = &bridge.ServerCluster{Host: rhost, Port: port, Routes: cl.NATSRoutes, Secret: cl.NATSSecret}
		}
		if n.nats, err = bridge.StartServer(ctx, creds, scfg); err != nil {
			if errors.Is(err, bridge.ErrAddrInUse) {
				return fmt.Errorf("embedded NATS on %s: %w (another logbook serve or NATS server holds it; use --nats-listen)", n.cfg.NATSListen, err)
			}
			return fmt.Errorf("start the embedded NATS server: %w", err)
		}
		n.closers = append(n.closers, n.nats.Close)
		n.natsURLs = n.nats.AdvertiseURLs()
		if n.nc, err = n.nats.ConnectInternal(nats.Name("logbook-serve")); err != nil {
			return fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
	} else {
		n.natsURLs = n.cfg.NATSAdvertise
		if len(n.natsURLs) == 0 {
			n.natsURLs = strings.Split(n.cfg.NATS, ",")
		}
		if n.nc, err = nats.Connect(n.cfg.NATS, nats.Name("logbook-serve"), nats.MaxReconnects(-1)); err != nil {
			return fmt.Errorf("connect to NATS at %s: %w", redactURL(n.cfg.NATS), err)
		}
	}
	n.closers = append(n.closers, func() error { n.nc.Close(); return nil })

	enroller, err := bridge.NewEnroller(creds, n.key.Public().(ed25519.PublicKey), n.natsURLs)
	if err != nil {
		return err
	}
	n.enroller = enroller
	n.bridgeCfg = bridge.DefaultConfig()
	n.bridgeCfg.Logger = n.logger
	n.bridgeCfg.Enroller = enroller
	n.bridgeStore = store
	if n.raft == nil {
		// A single node leads always: start now, so a failure is a
		// start-up error.
		b, err := n.startBridge(ctx)
		if err != nil {
			return err
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.superviseBridge(n.bg, b); err != nil {
				n.fail(err)
			}
		}()
		return nil
	}
	// In a cluster the bridge runs on the leader only, started after the
	// leader's barrier and stopped when the leadership ends.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := n.raft.RunAsLeader(n.bg, func(ctx context.Context) error {
			n.logger.Info("this node leads the cluster: starting the NATS bridge")
			b, err := n.startBridge(ctx)
			if err != nil {
				return err
			}
			err = n.superviseBridge(ctx, b)
			n.logger.Info("this node no longer leads: NATS bridge stopped")
			return err
		})
		if err != nil && n.bg.Err() == nil {
			n.fail(fmt.Errorf("leader tasks: %w", err))
		}
	}()
	return nil
}

// checkpointFile holds the dispatcher's restart position.
func (n *node) checkpointFile() string { return filepath.Join(n.cfg.DataDir, "dispatch.checkpoint") }

// startBridge starts the bridge from the saved dispatcher checkpoint.
func (n *node) startBridge(ctx context.Context) (*bridge.Bridge, error) {
	bcfg := n.bridgeCfg
	bcfg.Dispatch.StartPosition = readCheckpoint(n.checkpointFile(), n.logger)
	b, err := bridge.Start(ctx, n.nc, n.host, n.bridgeStore, n.key, bcfg)
	if err != nil {
		return nil, fmt.Errorf("start the NATS bridge: %w", err)
	}
	n.bridge.Store(b)
	return b, nil
}

// superviseBridge saves the dispatcher checkpoint every minute until ctx
// ends or the bridge stops, then saves it once more and closes the bridge.
func (n *node) superviseBridge(ctx context.Context, b *bridge.Bridge) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	var stopped error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-b.Done():
			stopped = errors.New("the NATS bridge stopped unexpectedly")
			break loop
		case <-t.C:
			if err := n.saveCheckpoint(b); err != nil {
				n.logger.Warn("saving the dispatcher checkpoint failed", "err", err)
			}
		}
	}
	err := n.saveCheckpoint(b)
	n.bridge.CompareAndSwap(b, nil)
	return errors.Join(stopped, err, b.Close())
}

// readCheckpoint reads the dispatcher's start position; 0 (read the whole
// log) when there is none or it is unreadable.
func readCheckpoint(path string, logger *slog.Logger) uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logger.Warn("reading the dispatcher checkpoint failed; starting from the beginning of the log", "err", err)
		}
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		logger.Warn("bad dispatcher checkpoint; starting from the beginning of the log", "file", path, "err", err)
		return 0
	}
	return v
}

func (n *node) saveCheckpoint(b *bridge.Bridge) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cp, err := b.Checkpoint(ctx)
	if err != nil {
		return err
	}
	return agent.WriteFileAtomic(n.checkpointFile(), []byte(strconv.FormatUint(cp, 10)+"\n"), 0o600)
}

// startReadModels opens the read-model database and starts the runner.
func (n *node) startReadModels(ctx context.Context, store events.Store) error {
	var err error
	if n.sink, err = projections.OpenSink(ctx, n.cfg.ReadModels); err != nil {
		return fmt.Errorf("--read-models %s: %w", redactURL(n.cfg.ReadModels), err)
	}
	n.closers = append(n.closers, n.sink.Close)
	if n.runner, err = projections.Start(ctx, store, n.sink, readmodel.All(), projections.WithLogger(n.logger)); err != nil {
		return fmt.Errorf("start the read models: %w", err)
	}
	n.closers = append(n.closers, n.runner.Close)
	n.registry.MustRegister(projections.NewCollector(n.runner), newFleetCollector(readmodel.Guard(n.runner, n.sink)))
	return nil
}

// startDumps opens the dump bucket and writes due days every hour.
func (n *node) startDumps(ctx context.Context, store events.Store) error {
	if n.cfg.Dump == "off" {
		return nil
	}
	if strings.HasPrefix(n.cfg.Dump, "file://") {
		if err := os.MkdirAll(strings.TrimPrefix(n.cfg.Dump, "file://"), 0o750); err != nil {
			return fmt.Errorf("--dump %s: %w", n.cfg.Dump, err)
		}
	}
	var err error
	if n.dumper, err = dump.Open(ctx, store, n.cfg.Dump, dump.WithLogger(n.logger)); err != nil {
		return fmt.Errorf("--dump %s: %w", redactURL(n.cfg.Dump), err)
	}
	n.closers = append(n.closers, n.dumper.Close)
	n.every(time.Hour, func(ctx context.Context) {
		results, err := n.dumper.RunDue(ctx)
		if err != nil && ctx.Err() == nil {
			n.logger.Warn("daily dump failed; will retry", "err", err)
		}
		for _, r := range results {
			n.logger.Info("daily dump written", "result", fmt.Sprintf("%+v", r))
		}
	})
	return nil
}

// every runs f now and then every d on the node's background context.
func (n *node) every(d time.Duration, f func(ctx context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			f(n.bg)
			select {
			case <-n.bg.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// startHTTP mounts the API, ingest, metrics and health checks and serves.
func (n *node) startHTTP(store events.Store) error {
	models := readmodel.Guard(n.runner, n.sink)
	srv, err := api.New(api.Deps{
		Store: store, Host: n.host, Runner: n.runner, Models: models,
		Enrolments: n.enroller, NATSURLs: n.natsURLs, SigningKey: n.key.Public().(ed25519.PublicKey),
		Tokens: n.tokens, Logger: n.logger, Cluster: n.clusterStatus(), ClusterAdmin: n.clusterAdmin(),
	})
	if err != nil {
		return err
	}
	readings, err := ingest.New(ingest.Config{
		Store: store, Readings: models, Authorize: n.tokens.Authorizer(httpRole), Logger: n.logger,
	})
	if err != nil {
		return err
	}
	n.registry.MustRegister(readings)
	mux := http.NewServeMux()
	mux.Handle("/", srv.Handler())
	mux.Handle(ingest.PathIngest, readings.Handler())
	mux.Handle("/api/statistics/", readings.Handler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{Registry: n.registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", n.readyz)
	n.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn),
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(n.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.fail(fmt.Errorf("HTTP server: %w", err))
		}
	}()
	return nil
}

// httpRole is the role the plain HTTP endpoints need: POST /ingest an
// ingest (or operator, admin) token, the statistics a read token.
func httpRole(r *http.Request) string {
	if r.URL.Path == ingest.PathIngest {
		return api.RoleIngest
	}
	return api.RoleRead
}

// readyz answers 200 when every read model has caught up and the bridge
// runs, 503 listing what is not ready otherwise.
func (n *node) readyz(w http.ResponseWriter, _ *http.Request) {
	var notReady []string
	for _, st := range n.runner.Statuses() {
		if err := n.runner.Ready(st.Name); err != nil {
			notReady = append(notReady, err.Error())
		}
	}
	if n.raft == nil && n.bridge.Load() == nil {
		notReady = append(notReady, "the NATS bridge is not running")
	}
	if n.raft != nil {
		if id, _ := n.raft.Leader(); id == "" {
			notReady = append(notReady, "the cluster has no leader")
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(notReady) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(strings.Join(notReady, "\n") + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (n *node) fail(err error) {
	select {
	case n.failed <- err:
	default:
	}
}

// shutdown stops taking requests, drains, and closes everything in
// reverse order of opening, the log last.
func (n *node) shutdown(timeout time.Duration) error {
	var errs []error
	if n.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("HTTP shutdown: %w", err))
			_ = n.http.Close()
		}
		cancel()
	} else if n.listener != nil {
		_ = n.listener.Close()
	}
	n.stopBg()
	n.wg.Wait()
	for i := len(n.closers) - 1; i >= 0; i-- {
		if err := n.closers[i](); err != nil && !errors.Is(err, events.ErrClosed) {
			errs = append(errs, err)
		}
	}
	n.closers = nil
	return errors.Join(errs...)
}

// clusterStatus answers the API's ClusterStatus from the raft member; nil
// on a single node.
func (n *node) clusterStatus() api.ClusterStatusFunc {
	if n.raft == nil {
		return nil
	}
	return func(ctx context.Context) (*api.ClusterStatus, error) {
		st, err := n.raft.Status(ctx)
		if err != nil {
			return nil, err
		}
		out := &api.ClusterStatus{Leader: st.LeaderID}
		for _, m := range st.Members {
			out.Members = append(out.Members, api.ClusterMember{
				ID: m.ID, Address: m.Address, Leader: m.ID == st.LeaderID, Voter: m.Voter,
				AppliedPosition: m.Head.Position, HeadHash: m.Head.Hash[:], Err: m.Err,
			})
		}
		return out, nil
	}
}

// clusterAdmin is the raft member for the API's membership calls; nil on
// a single node.
func (n *node) clusterAdmin() api.ClusterAdmin {
	if n.raft == nil {
		return nil
	}
	return n.raft
}
