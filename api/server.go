package api

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
)

// Enrolments issues one-time enrolment tokens for units
// (cluster/bridge.Enroller implements it).
type Enrolments interface {
	IssueToken(ctx context.Context, unit string, ttl time.Duration) (string, error)
}

// Deps is what the services need; cmd/logbook wires it.
type Deps struct {
	// Store is the event log.
	Store events.Store
	// Host runs the entities (unit, process, release, channel).
	Host *actors.Host
	// Runner runs the read models; Models reads them (through
	// readmodel.Guard, so queries fail with projections.ErrNotReady until
	// a read model has caught up once).
	Runner *projections.Runner
	Models readmodel.Reader
	// Enrolments, NATSURLs and SigningKey answer CreateEnrolmentToken.
	Enrolments Enrolments
	NATSURLs   []string
	SigningKey ed25519.PublicKey
	// Tokens authenticates callers.
	Tokens *Tokens
	// Cluster answers ClusterStatus and ClusterAdmin the membership
	// calls; both nil on a single node.
	Cluster      ClusterStatusFunc
	ClusterAdmin ClusterAdmin
	// NodeID and NodeAddress name this node in ClusterStatus when Cluster
	// is nil (NodeID defaults to the host name).
	NodeID, NodeAddress string
	Logger              *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// ClusterStatusFunc reports the cluster's members for ClusterStatus.
type ClusterStatusFunc func(ctx context.Context) (*ClusterStatus, error)

// ClusterAdmin changes the cluster's membership (cluster/raft.Node
// implements it); nil on a single node.
type ClusterAdmin interface {
	// Remove takes the node id out of the cluster.
	Remove(ctx context.Context, id string) error
	// TransferLeadership hands the leadership to id, or to the most
	// up-to-date follower when id is empty.
	TransferLeadership(ctx context.Context, id string) error
	// Leader names the leader this node knows.
	Leader() (id, addr string)
}

// ClusterStatus is the cluster as one node sees it.
type ClusterStatus struct {
	Leader  string
	Members []ClusterMember
}

// ClusterMember is one node of the cluster.
type ClusterMember struct {
	ID, Address     string
	Leader, Voter   bool
	AppliedPosition uint64
	HeadHash        []byte
	Err             error
}

// Server holds the services.
type Server struct {
	d Deps
}

// New checks d and returns the server.
func New(d Deps) (*Server, error) {
	if d.Store == nil || d.Host == nil || d.Runner == nil || d.Models == nil || d.Tokens == nil {
		return nil, errors.New("api: New needs Store, Host, Runner, Models and Tokens")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.NodeID == "" {
		d.NodeID, _ = os.Hostname()
	}
	return &Server{d: d}, nil
}

// Handler returns the HTTP handler of every service, under the paths
// Connect derives from api.proto ("/logbook.v1.UnitService/ListUnits", ...).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	opts := s.handlerOptions()
	s.mountCore(mux, opts)
	s.mountHistory(mux, opts)
	return mux
}
