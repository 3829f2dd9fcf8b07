package main

import (
	"context"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/proto/logbook/v1/logbookv1connect"
)

// app holds the global flags and the environment of one Run; every client
// command reads them through it.
type app struct {
	conn    connFlags
	output  string
	timeout time.Duration
	getenv  func(string) string
	now     func() time.Time
}

func newApp() *app {
	return &app{getenv: os.Getenv, now: time.Now}
}

// client is the set of API clients of one server.
type client struct {
	conn        connection
	timeout     time.Duration
	units       logbookv1connect.UnitServiceClient
	processes   logbookv1connect.ProcessServiceClient
	releases    logbookv1connect.ReleaseServiceClient
	channels    logbookv1connect.ChannelServiceClient
	commands    logbookv1connect.CommandServiceClient
	events      logbookv1connect.EventServiceClient
	audit       logbookv1connect.AuditServiceClient
	projections logbookv1connect.ProjectionServiceClient
	tokens      logbookv1connect.TokenServiceClient
	cluster     logbookv1connect.ClusterServiceClient
}

// bearer adds the token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}

// newClient connects the API clients to conn: Connect's binary protobuf
// over HTTP/1.1 or HTTP/2, the token in an Authorization header.
func newClient(conn connection, timeout time.Duration) *client {
	hc := &http.Client{Transport: bearer{token: conn.Token, next: http.DefaultTransport}}
	url := conn.Server
	opts := []connect.ClientOption{connect.WithSendGzip()}
	return &client{
		conn:        conn,
		timeout:     timeout,
		units:       logbookv1connect.NewUnitServiceClient(hc, url, opts...),
		processes:   logbookv1connect.NewProcessServiceClient(hc, url, opts...),
		releases:    logbookv1connect.NewReleaseServiceClient(hc, url, opts...),
		channels:    logbookv1connect.NewChannelServiceClient(hc, url, opts...),
		commands:    logbookv1connect.NewCommandServiceClient(hc, url, opts...),
		events:      logbookv1connect.NewEventServiceClient(hc, url, opts...),
		audit:       logbookv1connect.NewAuditServiceClient(hc, url, opts...),
		projections: logbookv1connect.NewProjectionServiceClient(hc, url, opts...),
		tokens:      logbookv1connect.NewTokenServiceClient(hc, url, opts...),
		cluster:     logbookv1connect.NewClusterServiceClient(hc, url, opts...),
	}
}

// call returns a context for one unary request, limited by --timeout (0:
// no limit).
func (c *client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// unary runs one unary request with the --timeout limit.
func unary[Req, Res any](ctx context.Context, c *client, fn func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), req *Req) (*Res, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	res, err := fn(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// run resolves the connection and runs fn with a client and a printer for
// cmd. API errors that fn returns are marked for PrintError.
func (a *app) run(cmd *cobra.Command, fn func(ctx context.Context, c *client, p *display) error) error {
	a.conn.serverSet = cmd.Flags().Changed("server")
	a.conn.tokenSet = cmd.Flags().Changed("token")
	a.conn.dataDirSet = cmd.Flags().Changed("data-dir")
	conn, err := resolveConnection(a.conn, a.getenv)
	if err != nil {
		return err
	}
	p, err := a.display(cmd)
	if err != nil {
		return err
	}
	c := newClient(conn, a.timeout)
	err = fn(cmd.Context(), c, p)
	if err == nil {
		err = p.err
	}
	return wrapAPIError(conn.Server, err)
}

// show calls fn with req and prints the answer as -o asks: the message
// itself for json and yaml, what table makes of it for a table.
func show[Req, Res any](ctx context.Context, c *client, p *display, fn func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), req *Req, table func(res *Res) error) error {
	res, err := unary(ctx, c, fn, req)
	if err != nil {
		return err
	}
	if !p.table() {
		p.message(any(res).(proto.Message))
		return nil
	}
	return table(res)
}
