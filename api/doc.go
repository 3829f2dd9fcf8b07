// Package api serves Logbook's public API (proto/logbook/v1/api.proto) with
// Connect: gRPC, gRPC-Web and JSON over HTTP from one handler, so the
// generated clients, grpcurl and curl all work:
//
//	curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
//	    -d '{"selector":"site=north"}' http://127.0.0.1:8080/logbook.v1.UnitService/ListUnits
//
// # Services
//
// UnitService, ProcessService, ReleaseService and ChannelService change
// entities through the actors.Host and read single entities by rebuilding
// them (Host.Read); their lists come from the read models. CommandService
// issues remote commands to units (by name or label selector) and streams
// their results as the log records them. EventService reads and follows
// the log and verifies its hash chain; AuditService rebuilds an entity as
// it was at a time or log position and diffs two points; ProjectionService
// lists read models and rebuilds one while the old tables keep serving.
// TokenService manages API tokens; ClusterService reports the raft members.
//
// Decisions never read a read model: the facts a command needs from
// another entity (a release's state for a promotion, a channel's release
// for an assignment) are read from that entity (see README "Entities").
//
// # Authentication and errors
//
// Every call needs a bearer token (Tokens): tokens are events in the log
// holding only a SHA-256 of the secret, compared in constant time; a role
// (admin, operator, read, ingest) bounds what a token may call (RoleFor).
// Domain errors map to Connect codes with messages that say what to fix
// (ConnectError): InvalidArgument, NotFound, AlreadyExists,
// FailedPrecondition, and Unavailable (HTTP 503) while a read model catches
// up after start.
//
// # Wiring
//
// cmd/logbook builds the Deps (store, host with the four kinds, runner and
// guarded read models, tokens, enrolments) and mounts Server.Handler at
// "/"; the readings ingest lives in api/ingest.
package api
