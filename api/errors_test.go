package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/api"
)

// TestConnectErrorMessages: the caller gets the domain's message, without
// what the entity host says about the stream and command it named.
func TestConnectErrorMessages(t *testing.T) {
	refusal := fmt.Errorf("unit ship1: %w at 2026-01-02T03:04:05Z by admin", unit.ErrAlreadyRegistered)
	for _, tc := range []struct {
		name string
		err  error
		code connect.Code
		msg  string
	}{
		{"refused", &actors.RefusedError{Stream: "unit-ship1", Command: "logbook.v1.RegisterUnit", Err: refusal},
			connect.CodeAlreadyExists, refusal.Error()},
		{"refused, wrapped", fmt.Errorf("register: %w", &actors.RefusedError{Stream: "unit-ship1", Command: "logbook.v1.RegisterUnit", Err: refusal}),
			connect.CodeAlreadyExists, refusal.Error()},
		{"not executed", fmt.Errorf("actors: unit-ship1: %w: %w", actors.ErrNotExecuted, context.DeadlineExceeded),
			connect.CodeDeadlineExceeded, "context deadline exceeded"},
		{"not executed, canceled", fmt.Errorf("actors: unit-ship1: %w: %w", actors.ErrNotExecuted, context.Canceled),
			connect.CodeCanceled, "context canceled"},
		{"outcome unknown", fmt.Errorf("actors: unit-ship1: %w: %w", actors.ErrOutcomeUnknown, context.DeadlineExceeded),
			connect.CodeDeadlineExceeded, "actors: unit-ship1: command outcome unknown: context deadline exceeded (the command may still take effect: read the entity to see its outcome)"},
		{"host closed", fmt.Errorf("actors: unit-ship1: %w", actors.ErrClosed),
			connect.CodeUnavailable, "entity host closed"},
		{"not the host's", fmt.Errorf("read head: %w", context.DeadlineExceeded),
			connect.CodeDeadlineExceeded, "read head: context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := api.ConnectError(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), "test", tc.err)
			if msg := wantCode(t, err, tc.code); msg != tc.msg {
				t.Errorf("message %q, want %q", msg, tc.msg)
			}
		})
	}
}
