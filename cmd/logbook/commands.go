package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Final statuses of a remote command.
const (
	statusSucceeded = "succeeded"
	statusFailed    = "failed"
	statusExpired   = "expired"
	statusCancelled = "cancelled"
)

func newCmdCommand(a *app) *cobra.Command {
	return newGroup("cmd", "Run commands on units and read their results",
		`A remote command is first an event in the unit's stream; the control plane
delivers it when the unit is connected (redelivering until the agent
acknowledges), the agent runs it at most once and reports the result, which
becomes an event too. An offline unit gets the command when it comes back,
until the command's deadline.`,
		newCmdRunCommand(a), newCmdLsCommand(a), newCmdShowCommand(a),
	)
}

func newCmdRunCommand(a *app) *cobra.Command {
	var (
		selector, method, domain, id string
		timeout                      durationFlag
		detach, progress             bool
	)
	c := &cobra.Command{
		Use:   "run (UNIT... | --selector LABELS) -- COMMAND [ARG...]",
		Short: "Run a command on units and wait for the results",
		Long: `run issues a command to the listed units, or to every active unit that
matches --selector, then waits and prints each unit's result as it arrives
(the unit's name, status and exit code, then its output). A progress line
("3/10 done") goes to standard error when it is a terminal, or always with
--progress.

The command runs on the unit without a shell; the agent runs only programs
on its --allow list. --timeout is how long the command may wait for an
offline unit (its deadline; default 1h); run waits until every unit has
finished or its deadline passed. Ctrl-C stops waiting, not the command:
look it up later with logbook cmd show.

The exit code is 0 when every unit succeeded and 1 when any failed, expired
or did not take the command.`,
		Example: `  logbook cmd run ship1 ship2 -- uptime
  logbook cmd run --selector site=north -- systemctl restart nginx
  logbook cmd run ship1 --timeout 10m -- df -h /
  logbook cmd run --selector role=gateway --detach -- reboot`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 {
				return usageErrorf(cmd, "missing the command: put it after --, e.g. logbook cmd run ship1 -- uptime")
			}
			if dash == len(args) {
				return usageErrorf(cmd, "missing the command after --")
			}
			if (dash == 0) == (selector == "") {
				return usageErrorf(cmd, "name the units or give --selector, not both")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			secs, err := seconds("--timeout", time.Duration(timeout))
			if err != nil {
				return newUsageError(cmd, err)
			}
			req := &logbookv1.RunCommandRequest{
				Units: args[:dash], Selector: selector, Method: method, Domain: domain,
				Args: args[dash:], TimeoutSeconds: secs, CommandId: id,
			}
			showProgress := progress || isTerminal(cmd.ErrOrStderr())
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return runCommand(ctx, c, p, req, detach, showProgress)
			})
		},
	}
	f := c.Flags()
	f.StringVarP(&selector, "selector", "l", "", "run on every active unit matching this label selector")
	f.Var(&timeout, "timeout", "how long the command may wait for an offline unit (default 1h)")
	f.BoolVar(&detach, "detach", false, "return once the command is issued; do not wait for results")
	f.BoolVar(&progress, "progress", false, "print the progress line even when standard error is not a terminal")
	f.StringVar(&method, "method", "", `method (default "shellcommand")`)
	f.StringVar(&domain, "domain", "", `domain (default: for shellcommand, the program: the first word after --)`)
	f.StringVar(&id, "id", "", "command id, to make a retried run idempotent (default: a new random id)")
	return c
}

// runCommand issues req, then (unless detach) waits for every unit's result
// and prints each as it arrives.
func runCommand(ctx context.Context, c *client, p *display, req *logbookv1.RunCommandRequest, detach, progress bool) error {
	issued, err := unary(ctx, c, c.commands.RunCommand, req)
	if err != nil {
		return err
	}
	var units []string
	refused := 0
	for _, is := range issued.GetIssued() {
		if is.GetError() != "" {
			refused++
			p.note("%s: not issued: %s", is.GetUnit(), is.GetError())
			continue
		}
		units = append(units, is.GetUnit())
	}
	if len(issued.GetIssued()) == 0 {
		return errors.New("no unit matches: nothing was issued")
	}
	if detach || len(units) == 0 {
		if !p.table() {
			p.message(issued)
		} else if len(units) > 0 {
			p.f("command %s issued to %d unit(s): %s\n", issued.GetCommandId(), len(units), strings.Join(units, " "))
			p.note("Follow it with: logbook cmd show %s %s", units[0], issued.GetCommandId())
		}
		if refused > 0 {
			return &exitCodeError{code: exitError, err: fmt.Errorf("%d of %d unit(s) did not take the command", refused, len(issued.GetIssued()))}
		}
		return nil
	}

	stream, err := c.commands.WaitCommand(ctx, connect.NewRequest(&logbookv1.WaitCommandRequest{Units: units, CommandId: issued.GetCommandId()}))
	if err != nil {
		return err
	}
	defer stream.Close()
	prog := newProgressLine(p.diag, progress)
	prog.set("0/%d done", len(units))
	failed, done := 0, 0
	for stream.Receive() {
		msg := stream.Msg()
		rec := msg.GetCommand()
		done = int(msg.GetDone())
		if rec.GetStatus() != statusSucceeded {
			failed++
		}
		prog.clear()
		if p.table() {
			printResult(p, rec)
		} else {
			p.streamed(rec)
		}
		prog.set("%d/%d done", msg.GetDone(), msg.GetTotal())
	}
	prog.end()
	if err := stream.Err(); err != nil {
		if ctx.Err() != nil {
			p.note("Stopped waiting; the command goes on. Look it up with: logbook cmd ls --status issued")
		}
		return err
	}
	if done < len(units) {
		return fmt.Errorf("the server ended the wait after %d of %d unit(s)", done, len(units))
	}
	if failed > 0 || refused > 0 {
		return &exitCodeError{code: exitError, err: fmt.Errorf("%d of %d unit(s) did not succeed", failed+refused, len(issued.GetIssued()))}
	}
	return nil
}

// printResult prints one unit's finished command: a header line, then the
// output.
func printResult(p *display, r *logbookv1.CommandRecord) {
	head := fmt.Sprintf("== %s: %s", r.GetUnit(), r.GetStatus())
	switch r.GetStatus() {
	case statusSucceeded, statusFailed:
		head += fmt.Sprintf(" (exit %d", r.GetExitCode())
		if r.GetIssuedAt() != nil && r.GetFinishedAt() != nil {
			head += ", " + r.GetFinishedAt().AsTime().Sub(r.GetIssuedAt().AsTime()).Round(time.Millisecond).String()
		}
		head += ")"
	}
	if r.GetError() != "" {
		head += ": " + r.GetError()
	}
	p.f("%s\n", head)
	if out := r.GetOutput(); out != "" {
		p.f("%s", out)
		if !strings.HasSuffix(out, "\n") {
			p.f("\n")
		}
	}
	if r.GetOutputTruncated() {
		p.f("[output truncated: %d bytes in all]\n", r.GetOutputSize())
	}
}

// progressLine shows a one-line progress report on a terminal (rewritten
// in place) or, when forced elsewhere, one line per update.
type progressLine struct {
	w        io.Writer
	on, tty  bool
	lastSize int
}

func newProgressLine(w io.Writer, on bool) *progressLine {
	return &progressLine{w: w, on: on, tty: isTerminal(w)}
}

func (l *progressLine) set(format string, args ...any) {
	if !l.on {
		return
	}
	s := fmt.Sprintf(format, args...)
	if !l.tty {
		fmt.Fprintln(l.w, s)
		return
	}
	fmt.Fprintf(l.w, "\r%s", s)
	l.lastSize = len(s)
}

// clear erases the line on a terminal before other output.
func (l *progressLine) clear() {
	if l.on && l.tty && l.lastSize > 0 {
		fmt.Fprintf(l.w, "\r%s\r", strings.Repeat(" ", l.lastSize))
		l.lastSize = 0
	}
}

// end leaves the last progress line in place.
func (l *progressLine) end() {
	if l.on && l.tty && l.lastSize > 0 {
		fmt.Fprintln(l.w)
		l.lastSize = 0
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newCmdLsCommand(a *app) *cobra.Command {
	var status string
	var limit uint32
	c := &cobra.Command{
		Use:     "ls [UNIT]",
		Aliases: []string{"list"},
		Short:   "List remote commands, newest first",
		Example: `  logbook cmd ls
  logbook cmd ls ship1 --status failed`,
		Args: checkedArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &logbookv1.ListCommandsRequest{Status: status, Limit: limit}
			if len(args) == 1 {
				req.Unit = args[0]
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.commands.ListCommands, req, func(res *logbookv1.ListCommandsResponse) error {
					if len(res.GetCommands()) == 0 {
						p.note("No commands found.")
						return nil
					}
					var rows [][]string
					for _, r := range res.GetCommands() {
						exit := ""
						if r.GetStatus() == statusSucceeded || r.GetStatus() == statusFailed {
							exit = fmt.Sprint(r.GetExitCode())
						}
						rows = append(rows, []string{r.GetUnit(), r.GetCommandId(), r.GetMethod() + "." + r.GetDomain(), truncate(strings.Join(r.GetArgs(), " "), 40),
							r.GetStatus(), exit, ago(r.GetIssuedAt(), p.now), r.GetIssuedBy()})
					}
					p.rows([]string{"UNIT", "ID", "METHOD", "ARGS", "STATUS", "EXIT", "ISSUED", "BY"}, rows)
					if res.GetNext() != 0 {
						p.note("(more: raise --limit)")
					}
					return nil
				})
			})
		},
	}
	c.Flags().StringVar(&status, "status", "", "only commands in this status: issued, delivered, succeeded, failed, expired or cancelled")
	c.Flags().Uint32VarP(&limit, "limit", "n", 50, "how many commands to show")
	return c
}

func newCmdShowCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "show UNIT ID",
		Short:   "Show a remote command and its output",
		Example: `  logbook cmd show ship1 0193f0a4-7c1e-7d2a-9a7e-3b9d8c6f5e21`,
		Args:    exactArgs("UNIT", "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.commands.GetCommand, &logbookv1.GetCommandRequest{Unit: args[0], CommandId: args[1]}, func(res *logbookv1.GetCommandResponse) error {
					r := res.GetCommand()
					exit := ""
					if r.GetStatus() == statusSucceeded || r.GetStatus() == statusFailed {
						exit = fmt.Sprint(r.GetExitCode())
					}
					p.fields([][2]string{
						{"Unit", r.GetUnit()},
						{"ID", r.GetCommandId()},
						{"Method", r.GetMethod() + "." + r.GetDomain()},
						{"Args", strings.Join(r.GetArgs(), " ")},
						{"Status", r.GetStatus()},
						{"Exit code", exit},
						{"Error", r.GetError()},
						{"Issued", joinNonEmpty(stamp(r.GetIssuedAt(), p.now), "by", r.GetIssuedBy())},
						{"Deadline", stamp(r.GetDeadline(), p.now)},
						{"Delivered", stamp(r.GetDeliveredAt(), p.now)},
						{"Finished", stamp(r.GetFinishedAt(), p.now)},
						{"Position", fmt.Sprint(r.GetPosition())},
					})
					if r.GetOutput() != "" {
						p.f("\nOutput:\n%s", r.GetOutput())
						if !strings.HasSuffix(r.GetOutput(), "\n") {
							p.f("\n")
						}
					}
					if r.GetOutputTruncated() {
						p.f("[output truncated: %d bytes in all]\n", r.GetOutputSize())
					}
					return nil
				})
			})
		},
	}
}
