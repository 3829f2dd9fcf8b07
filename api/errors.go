package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/channel"
	"github.com/logbook-fleet/logbook/actors/process"
	"github.com/logbook-fleet/logbook/actors/release"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
)

// Errors of the API layer. Handlers and Tokens return errors wrapping them;
// the error interceptor (see handlerOptions) turns them, and the domain
// errors of the entities, the log and the read models, into Connect codes
// with ConnectError.
var (
	// ErrInvalidArgument: a request field is missing or malformed; the
	// message names the field and what it must look like.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the request names something that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrFailedPrecondition: the request is well-formed but the state of
	// what it names does not allow it.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrUnauthenticated: no bearer token, a malformed or unknown one, or
	// a revoked or expired one.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the token's role does not allow the call.
	ErrPermissionDenied = errors.New("permission denied")
)

// apiError is an error of the API layer: a sentinel for errors.Is, a
// message meant for the caller, and optionally the cause.
type apiError struct {
	kind error
	msg  string
	err  error
}

func (e *apiError) Error() string        { return e.msg }
func (e *apiError) Is(target error) bool { return target == e.kind }
func (e *apiError) Unwrap() error        { return e.err }

// invalidf returns an error wrapping ErrInvalidArgument with the message.
func invalidf(format string, args ...any) error {
	return &apiError{kind: ErrInvalidArgument, msg: fmt.Sprintf(format, args...)}
}

// notFoundf returns an error wrapping ErrNotFound with the message.
func notFoundf(format string, args ...any) error {
	return &apiError{kind: ErrNotFound, msg: fmt.Sprintf(format, args...)}
}

// preconditionf returns an error wrapping ErrFailedPrecondition.
func preconditionf(format string, args ...any) error {
	return &apiError{kind: ErrFailedPrecondition, msg: fmt.Sprintf(format, args...)}
}

// codes maps sentinels to Connect codes. The first match wins, so more
// specific sentinels come before the ones they may also wrap.
var codes = []struct {
	err  error
	code connect.Code
}{
	{ErrInvalidArgument, connect.CodeInvalidArgument},
	{ErrNotFound, connect.CodeNotFound},
	{ErrFailedPrecondition, connect.CodeFailedPrecondition},
	{ErrUnauthenticated, connect.CodeUnauthenticated},
	{ErrPermissionDenied, connect.CodePermissionDenied},
	{ErrTokenNotFound, connect.CodeNotFound},
	{ErrTokenExists, connect.CodeAlreadyExists},

	// Read models.
	{projections.ErrNotReady, connect.CodeUnavailable},
	{projections.ErrStopped, connect.CodeUnavailable},
	{projections.ErrClosed, connect.CodeUnavailable},
	{projections.ErrUnknownProjection, connect.CodeNotFound},
	{readmodel.ErrNotFound, connect.CodeNotFound},
	{readmodel.ErrInvalidQuery, connect.CodeInvalidArgument},

	// The log and the entity host.
	{events.ErrInvalidStreamName, connect.CodeInvalidArgument},
	{events.ErrStreamNotFound, connect.CodeNotFound},
	{events.ErrWrongExpectedVersion, connect.CodeFailedPrecondition},
	{events.ErrClosed, connect.CodeUnavailable},
	{actors.ErrClosed, connect.CodeUnavailable},
	{actors.ErrUnknownCategory, connect.CodeInvalidArgument},

	// Units.
	{unit.ErrInvalidName, connect.CodeInvalidArgument},
	{unit.ErrNotRegistered, connect.CodeNotFound},
	{unit.ErrAlreadyRegistered, connect.CodeAlreadyExists},
	{unit.ErrDecommissioned, connect.CodeFailedPrecondition},
	{unit.ErrInvalidLabel, connect.CodeInvalidArgument},
	{unit.ErrInvalidChannel, connect.CodeInvalidArgument},
	{unit.ErrChannelMismatch, connect.CodeFailedPrecondition},
	{unit.ErrInvalidRelease, connect.CodeInvalidArgument},
	{unit.ErrInvalidReport, connect.CodeInvalidArgument},
	{unit.ErrInvalidCommand, connect.CodeInvalidArgument},
	{unit.ErrDuplicateCommand, connect.CodeAlreadyExists},
	{unit.ErrDeadlinePassed, connect.CodeInvalidArgument},
	{unit.ErrTooManyPending, connect.CodeResourceExhausted},
	{unit.ErrUnknownCommand, connect.CodeNotFound},
	{unit.ErrCommandFinished, connect.CodeFailedPrecondition},
	{unit.ErrNotDue, connect.CodeFailedPrecondition},
	{unit.ErrReasonRequired, connect.CodeInvalidArgument},

	// Processes.
	{process.ErrInvalidID, connect.CodeInvalidArgument},
	{process.ErrInvalidStatus, connect.CodeInvalidArgument},
	{process.ErrInvalidRestartPolicy, connect.CodeInvalidArgument},
	{process.ErrInvalidConfig, connect.CodeInvalidArgument},

	// Releases.
	{release.ErrInvalidVersion, connect.CodeInvalidArgument},
	{release.ErrVersionMismatch, connect.CodeInvalidArgument},
	{release.ErrInvalidRepo, connect.CodeInvalidArgument},
	{release.ErrInvalidGitHash, connect.CodeInvalidArgument},
	{release.ErrInvalidPlatform, connect.CodeInvalidArgument},
	{release.ErrInvalidArtifact, connect.CodeInvalidArgument},
	{release.ErrInvalidManifest, connect.CodeInvalidArgument},
	{release.ErrBadSignature, connect.CodeInvalidArgument},
	{release.ErrInvalidCommand, connect.CodeInvalidArgument},
	{release.ErrAlreadyPublished, connect.CodeAlreadyExists},
	{release.ErrNotPublished, connect.CodeNotFound},
	{release.ErrYanked, connect.CodeFailedPrecondition},

	// Channels.
	{channel.ErrInvalidName, connect.CodeInvalidArgument},
	{channel.ErrNameMismatch, connect.CodeInvalidArgument},
	{channel.ErrNotCreated, connect.CodeNotFound},
	{channel.ErrAlreadyCreated, connect.CodeAlreadyExists},
	{channel.ErrInvalidCommand, connect.CodeInvalidArgument},
	{channel.ErrUnknownRelease, connect.CodeNotFound},
	{channel.ErrYankedRelease, connect.CodeFailedPrecondition},
	{channel.ErrNothingToRollBack, connect.CodeFailedPrecondition},
	{channel.ErrInvalidFlag, connect.CodeInvalidArgument},
	{channel.ErrFlagNotSet, connect.CodeNotFound},
	// Facts read from a release that changed before the channel decided:
	// the caller may simply retry.
	{channel.ErrFactsMismatch, connect.CodeAborted},
}

// ConnectError returns err as a *connect.Error with the code that tells the
// caller what to do: InvalidArgument (fix the request), NotFound,
// AlreadyExists, FailedPrecondition (the state does not allow it, e.g. a
// decommissioned unit, a yanked release or a concurrent write),
// Unavailable (a read model is catching up, or the server is shutting
// down: retry), Canceled or DeadlineExceeded, and Internal for anything
// else. A *connect.Error is returned unchanged, nil stays nil.
//
// The message is the domain's own ("unit ship1: unit decommissioned: ..."),
// without the entity host's prefix. Internal errors are logged with
// logger and the caller gets a generic message naming the request id.
func ConnectError(ctx context.Context, logger *slog.Logger, procedure string, err error) error {
	if err == nil {
		return nil
	}
	if ce := new(connect.Error); errors.As(err, &ce) {
		return ce
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return connect.NewError(c.code, errors.New(userMessage(err)))
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New(userMessage(err)))
	case errors.Is(err, context.DeadlineExceeded):
		msg := userMessage(err)
		if errors.Is(err, actors.ErrOutcomeUnknown) {
			msg += " (the command may still take effect: read the entity to see its outcome)"
		}
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New(msg))
	}
	id := MetadataFrom(ctx).CorrelationID
	logger.ErrorContext(ctx, "api: internal error", "procedure", procedure, "request_id", id, "err", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error (request id %s); the server log has the details", id))
}

// userMessage returns the message of err meant for the caller, without
// what the entity host adds about the stream and command the caller
// named: the reason of a refusal (a *actors.RefusedError's Err); the
// context's error when the host dropped the command before it started;
// the sentinel of a host error (closed, unknown category, panic, whose
// details are for the log). Anything else, including ErrOutcomeUnknown
// and ErrConflict, keeps its whole message.
func userMessage(err error) string {
	var refused *actors.RefusedError
	if errors.As(err, &refused) {
		return refused.Err.Error()
	}
	if errors.Is(err, actors.ErrNotExecuted) {
		for _, e := range []error{context.Canceled, context.DeadlineExceeded} {
			if errors.Is(err, e) {
				return e.Error()
			}
		}
	}
	for _, e := range []error{actors.ErrClosed, actors.ErrUnknownCategory, actors.ErrEntityPanicked} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}
