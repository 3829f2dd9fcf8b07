package api

import (
	"net/http"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/proto/logbook/v1/logbookv1connect"
)

// mountHistory mounts the event, audit and projection services: the log
// itself (events.go), entities at points of their history (audit.go) and
// the read models' runner (projections.go).
func (s *Server) mountHistory(mux *http.ServeMux, opts []connect.HandlerOption) {
	mux.Handle(logbookv1connect.NewEventServiceHandler(eventService{s}, opts...))
	mux.Handle(logbookv1connect.NewAuditServiceHandler(auditService{s}, opts...))
	mux.Handle(logbookv1connect.NewProjectionServiceHandler(projectionService{s}, opts...))
}
