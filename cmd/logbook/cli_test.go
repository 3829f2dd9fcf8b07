package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/logbook-fleet/logbook/test/testnet"
)

// TestUsageErrors checks that command-line mistakes fail before any request
// with exit code 2 and say what is wrong. --server points at a closed port,
// so a command that wrongly got as far as a request would fail with 1.
func TestUsageErrors(t *testing.T) {
	closed := closedPort(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"nonsense"}, `unknown command "nonsense"`},
		{[]string{"unit", "lss"}, `did you mean "ls"`},
		{[]string{"--bogus"}, "unknown flag"},
		{[]string{"unit", "show"}, "missing UNIT"},
		{[]string{"unit", "show", "a", "b"}, "unexpected argument"},
		{[]string{"unit", "pin", "ship1"}, "missing RELEASE"},
		{[]string{"process", "show", "ship1"}, "missing METHOD and DOMAIN"},
		{[]string{"unit", "label", "ship1", "nolabel"}, "want key=value"},
		{[]string{"unit", "register", "ship1", "--label", "x"}, "want key=value"},
		{[]string{"unit", "register", "ship1", "--label", "bad!key=v"}, "invalid label"},
		{[]string{"unit", "label", "ship1", "site!=x"}, "invalid label"},
		{[]string{"unit", "decommission", "ship1"}, "--reason is required"},
		{[]string{"unit", "enrol-token", "ship1", "--ttl", "soon"}, "invalid argument"},
		{[]string{"release", "yank", "1.0"}, "--reason is required"},
		{[]string{"release", "publish", "1.0"}, "--repo"},
		{[]string{"release", "publish", "1.0", "--repo", "a=b", "--artifact", "linux/arm64"}, "--artifact"},
		{[]string{"process", "set", "ship1", "m", "d"}, "nothing to set"},
		{[]string{"process", "set", "ship1", "m", "d", "--desired", "dancing"}, "want running or stopped"},
		{[]string{"process", "set", "ship1", "m", "d", "--restart", "sometimes"}, "want always, on-failure or never"},
		{[]string{"cmd", "run", "ship1"}, "put it after --"},
		{[]string{"cmd", "run", "ship1", "--"}, "missing the command"},
		{[]string{"cmd", "run", "--", "uptime"}, "name the units or give --selector"},
		{[]string{"cmd", "run", "ship1", "--selector", "a=b", "--", "uptime"}, "not both"},
		{[]string{"audit", "unit-ship1", "--at", "yesterday"}, "--at"},
		{[]string{"audit", "unit-ship1", "--diff", "0"}, "--diff"},
		{[]string{"audit", "timeline", "--since", "soon"}, "--since"},
		{[]string{"token", "create", "alice", "--role", "god"}, "--role"},
		{[]string{"events", "tail", "-n", "-1"}, "negative"},
		{[]string{"unit", "ls", "-o", "xml"}, "want table, json or yaml"},
		{[]string{"channel", "flag", "stable", "oops"}, "want key=value"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := Run(context.Background(), append([]string{"--server", closed}, tt.args...), &out, &out)
			if code := ExitCode(err); code != exitUsage {
				t.Fatalf("exit code %d (%v), want %d", code, err, exitUsage)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			var msg bytes.Buffer
			PrintError(&msg, err)
			if !strings.HasPrefix(msg.String(), "error: ") || !strings.Contains(msg.String(), "--help' for usage") {
				t.Errorf("printed:\n%s", msg.String())
			}
		})
	}
}

// closedPort returns the URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	// Outside the ephemeral range, so no other test's connection takes it.
	return "http://" + testnet.FreeAddr(t)
}

func TestConnectionRefused(t *testing.T) {
	url := closedPort(t)
	var out bytes.Buffer
	err := Run(context.Background(), []string{"unit", "ls", "--server", url, "--token", "x"}, &out, &out)
	if code := ExitCode(err); code != exitError {
		t.Fatalf("exit code %d (%v), want 1", code, err)
	}
	var msg bytes.Buffer
	PrintError(&msg, err)
	want := fmt.Sprintf("error: cannot connect to logbook serve at %s (unavailable)\nhint: is logbook serve running at %s?", url, url)
	if !strings.HasPrefix(msg.String(), want) {
		t.Errorf("printed:\n%s\nwant prefix:\n%s", msg.String(), want)
	}
}

func TestAPIErrorText(t *testing.T) {
	tests := []struct {
		err        error
		line, hint string
	}{
		{connect.NewError(connect.CodeNotFound, errors.New(`unit "ship9" not found`)), `unit "ship9" not found (not_found)`, ""},
		{connect.NewError(connect.CodeUnauthenticated, errors.New("missing bearer token")), "missing bearer token (unauthenticated)", "pass --token, set LOGBOOK_TOKEN or run logbook login"},
		{connect.NewError(connect.CodeUnavailable, errors.New("read model fleet is not ready")), "read model fleet is not ready (unavailable)", "the read model is catching up; retry"},
		{fmt.Errorf("list: %w", connect.NewError(connect.CodePermissionDenied, errors.New("role read may not do this"))), "role read may not do this (permission_denied)", "whoami"},
	}
	for _, tt := range tests {
		err := wrapAPIError("http://cp:8080", tt.err)
		if got := err.Error(); got != tt.line {
			t.Errorf("line %q, want %q", got, tt.line)
		}
		var ae *apiError
		if !errors.As(err, &ae) {
			t.Fatalf("%v is not an apiError", err)
		}
		if h := ae.Hint(); !strings.Contains(h, tt.hint) || (tt.hint == "") != (h == "") {
			t.Errorf("hint %q, want %q", h, tt.hint)
		}
		if ExitCode(err) != exitError {
			t.Errorf("exit code %d, want 1", ExitCode(err))
		}
	}
	if err := errors.New("plain"); wrapAPIError("x", err) != err {
		t.Error("a non-Connect error was wrapped")
	}
}

func TestExitCodes(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{usageErrorf(nil, "bad"), 2},
		{fmt.Errorf("wrapped: %w", usageErrorf(nil, "bad")), 2},
		{&exitCodeError{code: 1}, 1},
	} {
		if got := ExitCode(tt.err); got != tt.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.code)
		}
	}
	var out bytes.Buffer
	PrintError(&out, &exitCodeError{code: 1})
	if out.Len() != 0 {
		t.Errorf("a silent exit printed %q", out.String())
	}
}

// TestEveryCommandHasHelp walks the command tree: every command has a
// Short and runs --help; every runnable leaf has an example.
func TestEveryCommandHasHelp(t *testing.T) {
	root := newRootCommand(newApp())
	for _, c := range allCommands(root) {
		path := strings.Fields(c.CommandPath())[1:]
		if c.Short == "" {
			t.Errorf("%s: no Short", c.CommandPath())
		}
		if !c.HasSubCommands() && c.Name() != "help" && c.Name() != "completion" && c.Parent().Name() != "completion" && c.Example == "" {
			t.Errorf("%s: no Example", c.CommandPath())
		}
		var out bytes.Buffer
		if err := Run(context.Background(), append(path, "--help"), &out, &out); err != nil {
			t.Errorf("%s --help: %v", c.CommandPath(), err)
		}
		if !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%s --help lacks usage", c.CommandPath())
		}
	}
}

// allCommands returns c and every command below it.
func allCommands(c *cobra.Command) []*cobra.Command {
	all := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		all = append(all, allCommands(sub)...)
	}
	return all
}
