package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Enroller carries one enrolment request to the control plane. It returns an
// error wrapping ErrEnrolRejected when the control plane refuses the token,
// and any other error for a transport failure (the agent then retries).
type Enroller interface {
	Enrol(ctx context.Context, req *logbookv1.AgentEnrolRequest) (*logbookv1.AgentEnrolResponse, error)
}

// Defaults of NATSEnroller.
const (
	DefaultEnrolSubject = "logbook.enrol"
	// DefaultEnrolUser is the control plane's enrolment user; user names of
	// units never start with '$'.
	DefaultEnrolUser = "$enrol"
)

// DefaultInboxPrefix is the prefix of the inbox a unit receives replies on:
// the control plane lets a unit (and its enrolment connection) read only
// replies under it.
func DefaultInboxPrefix(unit string) string { return "_INBOX_" + unit }

// NATSEnroller enrols over NATS: it connects as User with the one-time
// token as password and sends the AgentEnrolRequest as a request on
// Subject. The control plane refuses a token either by failing the
// connection's authentication, or by replying with a "Nats-Service-Error"
// header (the nats micro convention), or with an empty body.
type NATSEnroller struct {
	URLs []string
	// Subject of the request (default DefaultEnrolSubject).
	Subject string
	// User to connect as (default DefaultEnrolUser).
	User string
	// InboxPrefix for the reply (default DefaultInboxPrefix(unit)).
	InboxPrefix string
	// Timeout of connection and request (default 10s).
	Timeout time.Duration
}

// Enrol implements Enroller.
func (e NATSEnroller) Enrol(ctx context.Context, req *logbookv1.AgentEnrolRequest) (*logbookv1.AgentEnrolResponse, error) {
	subject, user, timeout := e.Subject, e.User, e.Timeout
	if subject == "" {
		subject = DefaultEnrolSubject
	}
	if user == "" {
		user = DefaultEnrolUser
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	opts := []nats.Option{
		nats.Name("logbook-agent enrol " + req.GetUnit()),
		nats.UserInfo(user, req.GetToken()),
		nats.Timeout(timeout),
		nats.NoReconnect(),
	}
	inbox := e.InboxPrefix
	if inbox == "" {
		inbox = DefaultInboxPrefix(req.GetUnit())
	}
	opts = append(opts, nats.CustomInboxPrefix(inbox))
	nc, err := nats.Connect(strings.Join(e.URLs, ","), opts...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) {
			return nil, fmt.Errorf("%w: token not accepted: %v", ErrEnrolRejected, err)
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		if errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, nats.ErrAuthorization) {
			return nil, fmt.Errorf("%w: %v", ErrEnrolRejected, err)
		}
		return nil, fmt.Errorf("request %s: %w", subject, err)
	}
	if why := msg.Header.Get("Nats-Service-Error"); why != "" {
		return nil, fmt.Errorf("%w: %s", ErrEnrolRejected, why)
	}
	if len(msg.Data) == 0 {
		return nil, fmt.Errorf("%w: empty response", ErrEnrolRejected)
	}
	var resp logbookv1.AgentEnrolResponse
	if err := proto.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("decode enrolment response: %w", err)
	}
	if resp.GetError() != "" {
		return nil, fmt.Errorf("%w: %s", ErrEnrolRejected, resp.GetError())
	}
	return &resp, nil
}
