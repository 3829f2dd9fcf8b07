package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/logbook-fleet/logbook/actors/unit"
)

// DefaultPort is the embedded NATS server's default client port. It is
// not NATS' usual 4222, so that a NATS server already running on the
// machine does not clash with it.
const DefaultPort = 4250

// InternalUser is the NATS user name of the control plane's own
// connection. It starts with '$', so no unit can be named like it (unit
// names never start with '$'; see unit.ValidateToken); EnrolUser likewise.
const InternalUser = "$logbook"

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Host to listen on (default "0.0.0.0": units connect from elsewhere).
	Host string
	// Port to listen on (default DefaultPort); -1 picks a free port
	// (tests). A taken port fails StartServer with ErrAddrInUse.
	Port int
	// AdvertiseURLs are the URLs the agents are told at enrolment
	// (AgentEnrolResponse.nats_urls). Default: the server's client URL.
	AdvertiseURLs []string
	// ReadyTimeout bounds the server's start-up (default 10s).
	ReadyTimeout time.Duration
	// ResponseTTL is how long a unit may take to reply to a command
	// request it received (allow_responses; default 1 minute).
	ResponseTTL time.Duration
	// Logger receives authentication failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock for token expiry (default time.Now).
	Now func() time.Time
	// Cluster, when set, joins this server to the embedded NATS servers
	// of the other control-plane nodes, so a unit connected to any node
	// reaches the bridge on the leader. Nil: a standalone server.
	Cluster *ServerCluster
}

// ServerCluster joins embedded NATS servers into one NATS cluster over
// routes. Every node lists the others' route URLs; routes authenticate
// with a secret all nodes share.
type ServerCluster struct {
	// Name of the NATS cluster; the same on every node (default "logbook").
	Name string
	// Host (default "0.0.0.0") and Port (fixed: the other nodes list it)
	// the server listens on for routes from other nodes.
	Host string
	Port int
	// Routes are the other nodes' route addresses, host:port.
	Routes []string
	// Secret authenticates routes; the same on every node. Required.
	Secret string
}

func (c *ServerCluster) validate() error {
	var errs []error
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("cluster port %d: want 1-65535 (the other nodes list it in their routes)", c.Port))
	}
	if len(c.Secret) < 16 {
		errs = append(errs, errors.New("cluster secret: at least 16 characters, the same on every node"))
	}
	for _, r := range c.Routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			errs = append(errs, fmt.Errorf("route %q: want host:port: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// routeUser is the user routes between the embedded servers authenticate as.
const routeUser = "logbook-route"

// DefaultServerConfig returns the defaults described on ServerConfig.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Host:         "0.0.0.0",
		Port:         DefaultPort,
		ReadyTimeout: 10 * time.Second,
		ResponseTTL:  time.Minute,
		Logger:       slog.Default(),
		Now:          time.Now,
	}
}

// Validate reports every problem of c, joined.
func (c ServerConfig) Validate() error {
	var errs []error
	if c.Port < -1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want -1 (random) or 0-65535", c.Port))
	}
	if c.ReadyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("ready timeout %v: must be positive", c.ReadyTimeout))
	}
	if c.ResponseTTL <= 0 {
		errs = append(errs, fmt.Errorf("response TTL %v: must be positive", c.ResponseTTL))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("nil logger"))
	}
	if c.Now == nil {
		errs = append(errs, errors.New("nil clock"))
	}
	if c.Cluster != nil {
		if err := c.Cluster.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Server is the embedded NATS server with per-unit authentication. Every
// connection is checked against the CredentialStore when it connects, so
// new, rotated and deleted credentials take effect without a restart
// (Kick ends connections made with old ones; with a store that is a
// RevocationNotifier, such as LogCredentials, the server kicks a unit
// itself whenever its credential is revoked, wherever that happened).
//
// Users and what they may do:
//   - InternalUser (the control plane; password generated at start and
//     never stored): everything.
//   - EnrolUser with a valid one-time enrolment token as password: publish
//     EnrolSubject only, subscribe "_INBOX_<unit>.>" only (the token's
//     unit), until the token expires.
//   - a unit name with its password: see UnitPermissions.
type Server struct {
	ns       *server.Server
	cfg      ServerConfig
	creds    CredentialStore
	password string
	urls     []string
	// stopKicks ends the Kick on revocation (RevocationNotifier stores).
	stopKicks func()

	closeOnce sync.Once
}

// StartServer starts the embedded NATS server and waits until it accepts
// connections. ctx bounds nothing but the start; the server runs until Close.
func StartServer(ctx context.Context, creds CredentialStore, cfg ServerConfig) (*Server, error) {
	if creds == nil {
		return nil, errors.New("bridge: StartServer: nil credential store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bridge: server config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bridge: start nats server: %w", err)
	}
	host := cfg.Host
	if host == "" {
		host = "0.0.0.0"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(cfg.Port))
	if cfg.Port > 0 {
		// nats-server only logs a taken port; find out first, so the
		// error names it.
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("bridge: embedded nats server: listen on %s (port %d): %w: %v", addr, cfg.Port, ErrAddrInUse, err)
		}
		_ = ln.Close()
	}
	s := &Server{cfg: cfg, creds: creds, password: NewSecret()}
	opts := &server.Options{
		Host:                       host,
		Port:                       cfg.Port,
		NoSigs:                     true,
		NoLog:                      true,
		MaxControlLine:             4096,
		CustomClientAuthentication: (*authenticator)(s),
	}
	if c := cfg.Cluster; c != nil {
		name := c.Name
		if name == "" {
			name = "logbook"
		}
		chost := c.Host
		if chost == "" {
			chost = "0.0.0.0"
		}
		opts.Cluster = server.ClusterOpts{Name: name, Host: chost, Port: c.Port, Username: routeUser, Password: c.Secret}
		for _, r := range c.Routes {
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", User: url.UserPassword(routeUser, c.Secret), Host: r})
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bridge: embedded nats server: %w: %w", ErrServer, err)
	}
	s.ns = ns
	go ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("bridge: embedded nats server on %s (port %d) not ready after %v: %w", addr, cfg.Port, cfg.ReadyTimeout, ErrServer)
	}
	if n, ok := creds.(RevocationNotifier); ok {
		s.stopKicks = n.NotifyRevoked(func(u string) { s.Kick(u) })
	}
	s.urls = cfg.AdvertiseURLs
	if len(s.urls) == 0 {
		s.urls = []string{ns.ClientURL()}
	}
	return s, nil
}

// ClientURL is the URL to reach the server, e.g. "nats://127.0.0.1:4250".
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// AdvertiseURLs are the URLs agents are told at enrolment.
func (s *Server) AdvertiseURLs() []string { return append([]string(nil), s.urls...) }

// Port is the port the server listens on (the chosen one when Port was -1).
func (s *Server) Port() int {
	if a, ok := s.ns.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// ConnectInternal connects in-process as InternalUser, the privileged
// control-plane user. The caller owns the connection.
func (s *Server) ConnectInternal(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{
		nats.Name("logbook-bridge"),
		nats.InProcessServer(s.ns),
		nats.UserInfo(InternalUser, s.password),
		nats.MaxReconnects(-1),
	}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("bridge: connect to embedded nats server: %w", err)
	}
	return nc, nil
}

// Kick closes every connection authenticated as user (a unit name, or
// EnrolUser) and returns how many it closed: use it after deleting or
// rotating a unit's credential, since a live connection keeps the
// permissions it was given when it connected.
func (s *Server) Kick(user string) int {
	cz, err := s.ns.Connz(&server.ConnzOptions{Username: true, User: user, Limit: 1 << 16})
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range cz.Conns {
		if s.ns.DisconnectClientByID(c.Cid) == nil {
			n++
		}
	}
	return n
}

// Close shuts the server down and waits for it; it is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.stopKicks != nil {
			s.stopKicks()
		}
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
	return nil
}

// UnitPermissions are the NATS permissions of unit u: publish only
// "<u>.event.>", subscribe only "<u>.command.>" and its own inbox
// "_INBOX_<u>.>", and reply once to each request it received, within ttl.
func UnitPermissions(u string, ttl time.Duration) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{u + "." + KindEvent + ".>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{u + "." + KindCommand + ".>", InboxPrefix(u) + ".>"}},
		Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: ttl},
	}
}

// enrolPermissions are those of an enrolling agent of unit u.
func enrolPermissions(u string) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{EnrolSubject}},
		Subscribe: &server.SubjectPermission{Allow: []string{InboxPrefix(u) + ".>"}},
	}
}

// authenticator is the server's server.Authentication.
type authenticator Server

// authTimeout bounds a credential store lookup made while a client connects.
const authTimeout = 5 * time.Second

// Check implements server.Authentication: it runs on the server's
// goroutine for each new connection.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	opts := c.GetOpts()
	user, pass := opts.Username, opts.Password
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	deny := func(why string) bool {
		a.cfg.Logger.Warn("bridge: nats connection refused", "user", user, "remote", fmt.Sprint(c.RemoteAddress()), "reason", why)
		return false
	}
	switch {
	case user == InternalUser:
		if !HashSecret(a.password).Matches(pass) {
			return deny("bad password")
		}
		c.RegisterUser(&server.User{Username: user})
		return true
	case user == EnrolUser:
		tok, err := a.creds.Token(ctx, HashSecret(pass), a.cfg.Now())
		if err != nil {
			return deny("enrolment token: " + err.Error())
		}
		c.RegisterUser(&server.User{Username: user, Permissions: enrolPermissions(tok.Unit), ConnectionDeadline: tok.ExpiresAt})
		return true
	}
	if unit.ValidateName(user) != nil {
		return deny("not a unit name")
	}
	cred, err := a.creds.Credential(ctx, user)
	if err != nil {
		return deny(err.Error())
	}
	if !cred.Secret.Matches(pass) {
		return deny("bad password")
	}
	c.RegisterUser(&server.User{Username: user, Permissions: UnitPermissions(user, a.cfg.ResponseTTL)})
	return true
}
