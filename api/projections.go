package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/projections"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// projectionService reports on the read models and rebuilds them.
type projectionService struct{ s *Server }

// rebuildProgressEvery is how often RebuildProjection reports progress.
const rebuildProgressEvery = 500 * time.Millisecond

// ListProjections returns the status of every read model.
func (p projectionService) ListProjections(ctx context.Context, req *connect.Request[logbookv1.ListProjectionsRequest]) (*connect.Response[logbookv1.ListProjectionsResponse], error) {
	out := &logbookv1.ListProjectionsResponse{}
	for _, st := range p.s.d.Runner.Statuses() {
		out.Projections = append(out.Projections, projectionStatus(st))
	}
	return connect.NewResponse(out), nil
}

// RebuildProjection rebuilds a read model from position 1 into new tables
// while the current ones keep serving (see projections.Runner.Rebuild),
// streaming the new tables' progress every half second and, once they
// have taken over, the read model's status with done set. The rebuild
// belongs to the server: a client that goes away stops watching, not the
// rebuild, and calling again watches the same rebuild.
func (p projectionService) RebuildProjection(ctx context.Context, req *connect.Request[logbookv1.RebuildProjectionRequest], stream *connect.ServerStream[logbookv1.RebuildProjectionResponse]) error {
	runner, name := p.s.d.Runner, req.Msg.GetName()
	if name == "" {
		return invalidf("name: required, one of %s", strings.Join(projectionNames(runner), ", "))
	}
	if _, ok := runner.Status(name); !ok {
		return notFoundf("no read model %q; known: %s", name, strings.Join(projectionNames(runner), ", "))
	}
	if err := stream.Send(nil); err != nil { // the headers: the call has started
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runner.Rebuild(wctx, name) }()
	tick := time.NewTicker(rebuildProgressEvery)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if errors.Is(err, projections.ErrRebuilding) {
				return preconditionf("%v", err)
			}
			if err != nil {
				return err
			}
			st, _ := runner.Status(name)
			return stream.Send(&logbookv1.RebuildProjectionResponse{Status: projectionStatus(st), Done: true})
		case <-tick.C:
			st, _ := runner.Status(name)
			if st.Rebuild != nil {
				st = *st.Rebuild
			}
			if err := stream.Send(&logbookv1.RebuildProjectionResponse{Status: projectionStatus(st)}); err != nil {
				cancel()
				<-done
				return err
			}
		}
	}
}

// projectionStatus is st on the wire. Its state is one of building (a new
// generation is being built, see Status.Rebuild, or a new version after a
// bump), catching_up, live, failed (retrying after an error, see
// last_error) and stopped.
func projectionStatus(st projections.Status) *logbookv1.ProjectionStatus {
	out := &logbookv1.ProjectionStatus{
		Name: st.Name, Version: uint32(st.Version), State: projectionState(st), Ready: st.Ready,
		Checkpoint: st.Checkpoint, Head: st.Head, Lag: st.Lag, EventsPerSecond: st.EventsPerSecond, Errors: st.Errors,
	}
	if st.LastError != nil {
		out.LastError = st.LastError.Error()
	}
	return out
}

func projectionState(st projections.Status) string {
	switch st.State {
	case projections.StateRebuilding:
		return "building"
	case projections.StateStarting, projections.StateCatchingUp:
		return "catching_up"
	case projections.StateLive:
		if st.Rebuild != nil {
			return "building"
		}
		return "live"
	case projections.StateRetrying:
		return "failed"
	default: // stopped, closed
		return "stopped"
	}
}

func projectionNames(r *projections.Runner) []string {
	var names []string
	for _, st := range r.Statuses() {
		names = append(names, st.Name)
	}
	return names
}
