package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
)

// Exit codes of the logbook command.
const (
	exitOK    = 0 // success
	exitError = 1 // the command failed (an API error, a failed remote command, a broken chain)
	exitUsage = 2 // the command line is wrong
)

// usageError is a mistake on the command line: an unknown command or flag, a
// missing argument, a malformed label or time. It exits with exitUsage.
type usageError struct {
	cmd string // the command path, for the "--help" pointer; may be empty
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf returns a usageError for the command c (nil: none).
func usageErrorf(c *cobra.Command, format string, args ...any) error {
	return newUsageError(c, fmt.Errorf(format, args...))
}

func newUsageError(c *cobra.Command, err error) error {
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	path := ""
	if c != nil {
		path = c.CommandPath()
	}
	return &usageError{cmd: path, err: err}
}

// checkedArgs wraps a positional-argument validator so that its error is a
// usage error.
func checkedArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := v(c, args); err != nil {
			return newUsageError(c, err)
		}
		return nil
	}
}

// exactArgs accepts exactly the named arguments and says which are missing.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usageErrorf(c, "missing %s", argList(names[len(args):]))
		case len(args) > len(names):
			return usageErrorf(c, "unexpected argument %q (%s takes %d)", args[len(names)], c.CommandPath(), len(names))
		}
		return nil
	}
}

func argList(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	s := ""
	for i, n := range names {
		switch {
		case i == 0:
		case i == len(names)-1:
			s += " and "
		default:
			s += ", "
		}
		s += n
	}
	return s
}

// exitCodeError ends the command with code after its output already said
// what went wrong (failed remote commands, a broken hash chain). err, when
// set, is printed too.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitCodeError) Unwrap() error { return e.err }

// apiError is an error of a call to logbook serve at server.
type apiError struct {
	server string
	err    error
}

func (e *apiError) Unwrap() error { return e.err }

// Error renders the error as one line: the server's message and the
// Connect code, e.g. `unit "ship9" not found (not_found)`.
func (e *apiError) Error() string {
	if isConnRefused(e.err) {
		return fmt.Sprintf("cannot connect to logbook serve at %s (unavailable)", e.server)
	}
	var ce *connect.Error
	if !errors.As(e.err, &ce) {
		return e.err.Error()
	}
	msg := ce.Message()
	if ce.Code() == connect.CodeDeadlineExceeded && errors.Is(e.err, context.DeadlineExceeded) {
		msg = "no answer in time"
	}
	if msg == "" {
		msg = ce.Code().String()
	}
	return fmt.Sprintf("%s (%s)", msg, ce.Code())
}

// Hint says what to do about the error, or "".
func (e *apiError) Hint() string {
	if isConnRefused(e.err) {
		return fmt.Sprintf("is logbook serve running at %s? Pass --server or set LOGBOOK_SERVER to use another address", e.server)
	}
	switch connect.CodeOf(e.err) {
	case connect.CodeUnauthenticated:
		return "pass --token, set LOGBOOK_TOKEN or run logbook login"
	case connect.CodePermissionDenied:
		return "this token's role does not allow it; logbook whoami shows the role"
	case connect.CodeUnavailable:
		return "the read model is catching up; retry"
	case connect.CodeDeadlineExceeded:
		return "raise --timeout, or check that the server is not overloaded"
	}
	return ""
}

// isConnRefused reports whether err is a failure to reach the server at all
// (refused, unknown host, unreachable).
func isConnRefused(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// wrapAPIError marks err, returned by a call to server, as an API error so
// that it is printed with its code and a hint. Other errors pass unchanged.
func wrapAPIError(server string, err error) error {
	if err == nil {
		return nil
	}
	var ae *apiError
	var ce *connect.Error
	if errors.As(err, &ae) || !errors.As(err, &ce) {
		return err
	}
	return &apiError{server: server, err: err}
}

// ExitCode returns the process exit code for err, the result of Run.
func ExitCode(err error) int {
	var ue *usageError
	var ee *exitCodeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	}
	return exitError
}

// PrintError writes err, the result of Run, for a person: one "error:" line,
// then a hint or a pointer to --help when there is one. An exitCodeError
// without a message prints nothing (the command's output said it).
func PrintError(w io.Writer, err error) {
	var ee *exitCodeError
	if errors.As(err, &ee) && ee.err == nil {
		return
	}
	fmt.Fprintf(w, "error: %v\n", err)
	var ae *apiError
	if errors.As(err, &ae) {
		if h := ae.Hint(); h != "" {
			fmt.Fprintf(w, "hint: %s\n", h)
		}
	}
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd != "" {
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", ue.cmd)
	}
}
