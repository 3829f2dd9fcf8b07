package readmodel

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// CommandsName and CommandsVersion identify the command history read model.
const (
	CommandsName    = "commands"
	CommandsVersion = 1
)

// Command statuses.
const (
	CommandIssued    = "issued"
	CommandDelivered = "delivered"
	CommandSucceeded = "succeeded"
	CommandFailed    = "failed"
	CommandExpired   = "expired"
	CommandCancelled = "cancelled"
)

// MaxCommandOutput is how much of a command's output the history keeps, in
// bytes (the first bytes, as valid UTF-8); Command.OutputSize is the size
// the result carried.
const MaxCommandOutput = 4096

// Command is one command issued to a unit.
type Command struct {
	Unit   string
	ID     string
	Method string
	Domain string
	Args   []string
	// Status is one of CommandIssued ... CommandCancelled.
	Status   string
	ExitCode int32
	// Error is the failure message, or the reason of a cancellation.
	Error string
	// Output is the first MaxCommandOutput bytes of the output.
	Output     string
	OutputSize int64
	// OutputTruncated: the agent truncated the output, or the history did.
	OutputTruncated bool
	IssuedBy        string
	IssuedAt        time.Time
	Deadline        time.Time
	DeliveredAt     time.Time
	FinishedAt      time.Time
	// IssuedPosition is the log position of UnitCommandIssued; the list
	// functions order by it and page with it.
	IssuedPosition uint64
	// Position is the log position of the last event applied.
	Position uint64
}

var commandTypes = typeNames(&logbookv1.UnitCommandIssued{}, &logbookv1.UnitCommandDelivered{},
	&logbookv1.UnitCommandSucceeded{}, &logbookv1.UnitCommandFailed{}, &logbookv1.UnitCommandExpired{},
	&logbookv1.UnitCommandCancelled{})

// Commands returns the command history read model: one row per command of
// a unit, from issue to its final status.
func Commands() projections.Projection {
	return projections.Projection{
		Name:       CommandsName,
		Version:    CommandsVersion,
		Filter:     events.Filter{Categories: []string{"unit"}, Types: commandTypes},
		Migrations: migrationsOf(CommandsName),
		Handler:    projections.HandlerFunc(handleCommands),
	}
}

const commandCols = "unit, command_id, method, domain, args, status, exit_code, error, output, output_size, " +
	"output_truncated, issued_by, issued_at_ns, deadline_ns, delivered_at_ns, finished_at_ns, issued_position, position"

func scanCommand(r projections.Row) (Command, error) {
	var c Command
	var args string
	var exit, issued, deadline, delivered, finished, ipos, pos int64
	if err := r.Scan(&c.Unit, &c.ID, &c.Method, &c.Domain, &args, &c.Status, &exit, &c.Error, &c.Output, &c.OutputSize,
		&c.OutputTruncated, &c.IssuedBy, &issued, &deadline, &delivered, &finished, &ipos, &pos); err != nil {
		return c, err
	}
	var err error
	if c.Args, err = unmarshalList(args); err != nil {
		return c, err
	}
	c.ExitCode, c.IssuedAt, c.Deadline, c.DeliveredAt, c.FinishedAt = int32(exit), fromNanos(issued), fromNanos(deadline), fromNanos(delivered), fromNanos(finished)
	c.IssuedPosition, c.Position = uint64(ipos), uint64(pos)
	return c, nil
}

type commandKey struct{ unit, id string }

func handleCommands(ctx context.Context, tx projections.Tx, batch []events.Event) error {
	cmds := newCache(func(k commandKey) (*Command, error) {
		c, err := scanCommand(tx.QueryRow(ctx, "SELECT "+commandCols+" FROM "+tx.Table("commands")+
			" WHERE unit = ? AND command_id = ?", k.unit, k.id))
		if err != nil {
			return nil, noRow(err)
		}
		return &c, nil
	}, func(k commandKey) *Command { return &Command{Unit: k.unit, ID: k.id, Status: CommandIssued} })
	for _, ev := range batch {
		msg, err := decode(ev)
		if err != nil {
			return err
		}
		id, _ := msg.(interface{ GetCommandId() string })
		if id == nil {
			continue
		}
		c, err := cmds.get(commandKey{streamID(ev.Stream), id.GetCommandId()})
		if err != nil {
			return err
		}
		if ev.Position <= c.Position {
			continue
		}
		if c.IssuedPosition == 0 {
			c.IssuedPosition = ev.Position // a command seen without its issue
		}
		finished := c.Status != CommandIssued && c.Status != CommandDelivered
		switch e := msg.(type) {
		case *logbookv1.UnitCommandIssued:
			c.Method, c.Domain, c.Args = e.GetMethod(), e.GetDomain(), slices.Clone(e.GetArgs())
			c.IssuedBy = or(e.GetIssuedBy(), ev.Metadata.Principal)
			c.IssuedAt, c.Deadline = fromNanos(at(e.GetIssuedAt(), ev)), fromNanos(at(e.GetDeadline(), events.Event{}))
			c.IssuedPosition = ev.Position
		case *logbookv1.UnitCommandDelivered:
			c.DeliveredAt = fromNanos(at(e.GetAt(), ev))
			if c.Status == CommandIssued {
				c.Status = CommandDelivered
			}
		case *logbookv1.UnitCommandSucceeded:
			if !finished {
				c.Status, c.ExitCode, c.FinishedAt = CommandSucceeded, e.GetExitCode(), fromNanos(at(e.GetAt(), ev))
				c.setOutput(e.GetOutput(), e.GetOutputTruncated())
			}
		case *logbookv1.UnitCommandFailed:
			if !finished {
				c.Status, c.ExitCode, c.FinishedAt, c.Error = CommandFailed, e.GetExitCode(), fromNanos(at(e.GetAt(), ev)), e.GetError()
				c.setOutput(e.GetOutput(), e.GetOutputTruncated())
			}
		case *logbookv1.UnitCommandExpired:
			if !finished {
				c.Status, c.FinishedAt = CommandExpired, fromNanos(at(e.GetAt(), ev))
			}
		case *logbookv1.UnitCommandCancelled:
			if !finished {
				c.Status, c.FinishedAt, c.Error = CommandCancelled, fromNanos(at(e.GetAt(), ev)), e.GetReason()
			}
		}
		c.Position = ev.Position
	}
	var rows [][]any
	cmds.each(func(_ commandKey, c *Command) {
		args := c.Args
		if args == nil {
			args = []string{}
		}
		rows = append(rows, []any{c.Unit, c.ID, c.Method, c.Domain, marshalJSON(args), c.Status, int64(c.ExitCode), c.Error,
			c.Output, c.OutputSize, c.OutputTruncated, c.IssuedBy, nanos(c.IssuedAt), nanos(c.Deadline), nanos(c.DeliveredAt),
			nanos(c.FinishedAt), int64(c.IssuedPosition), int64(c.Position)})
	})
	_, err := tx.Upsert(ctx, projections.Upsert{
		Table: "commands", Columns: columns(commandCols), Key: []string{"unit", "command_id"},
		OnConflict: projections.DoUpdate,
	}, rows)
	return err
}

func (c *Command) setOutput(out []byte, truncated bool) {
	c.OutputSize, c.OutputTruncated = int64(len(out)), truncated
	if len(out) > MaxCommandOutput {
		out, c.OutputTruncated = out[:MaxCommandOutput], true
	}
	// Valid UTF-8 without NUL, so every dialect's TEXT takes it.
	c.Output = strings.ReplaceAll(strings.ToValidUTF8(string(out), "\uFFFD"), "\x00", "\uFFFD")
}

// CommandQuery selects commands for ListCommands. Zero fields select everything.
type CommandQuery struct {
	Unit string
	// Status is one of CommandIssued ... CommandCancelled.
	Status string
	// Before pages: only commands issued before this position (the last
	// IssuedPosition of the previous page).
	Before uint64
	// Limit bounds the result (DefaultLimit when 0, at most MaxLimit).
	Limit int
}

// ListCommands returns the commands q selects, newest issued first.
func ListCommands(ctx context.Context, rd Reader, q CommandQuery) ([]Command, error) {
	var out []Command
	err := view(ctx, rd, CommandsName, func(qr projections.Querier) error {
		var w where
		if q.Unit != "" {
			w.add("unit = ?", q.Unit)
		}
		if q.Status != "" {
			w.add("status = ?", q.Status)
		}
		if q.Before != 0 {
			w.add("issued_position < ?", int64(q.Before))
		}
		var err error
		out, err = scanAll(ctx, qr, "SELECT "+commandCols+" FROM "+qr.Table("commands")+w.String()+
			" ORDER BY issued_position DESC LIMIT ?", append(w.args, limitOf(q.Limit)),
			func(r projections.Rows) (Command, error) { return scanCommand(r) })
		return err
	})
	return out, err
}

// GetCommand returns one command of a unit, or ErrNotFound.
func GetCommand(ctx context.Context, rd Reader, unit, id string) (Command, error) {
	var c Command
	err := view(ctx, rd, CommandsName, func(q projections.Querier) error {
		var err error
		c, err = scanCommand(q.QueryRow(ctx, "SELECT "+commandCols+" FROM "+q.Table("commands")+
			" WHERE unit = ? AND command_id = ?", unit, id))
		return notFound(err, "command "+id+" of unit "+unit)
	})
	return c, err
}
