package readmodel

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// ProcessesName and ProcessesVersion identify the processes read model.
const (
	ProcessesName    = "processes"
	ProcessesVersion = 1
)

// Process is one process of a unit (stream
// "process-<unit>.<method>.<domain>"). Statuses and policies are the
// lower-case words of their enums ("running", "on_failure"), "" when unset.
type Process struct {
	Unit, Method, Domain string
	DesiredStatus        string
	RestartPolicy        string
	// Config is never nil.
	Config           map[string]string
	ConfigRevision   uint64
	DesiredChangedAt time.Time
	DesiredChangedBy string
	ReportedStatus   string
	RestartCount     uint32
	ExitCode         int32
	Detail           string
	ReportedAt       time.Time
	// Position is the log position of the last event applied.
	Position uint64
}

var processTypes = typeNames(&logbookv1.ProcessDesiredStatusSet{}, &logbookv1.ProcessRestartPolicySet{},
	&logbookv1.ProcessConfigured{}, &logbookv1.ProcessStatusReported{})

// Processes returns the processes read model: one row per process stream
// with its desired and reported state.
func Processes() projections.Projection {
	return projections.Projection{
		Name:       ProcessesName,
		Version:    ProcessesVersion,
		Filter:     events.Filter{Categories: []string{"process"}, Types: processTypes},
		Migrations: migrationsOf(ProcessesName),
		Handler:    projections.HandlerFunc(handleProcesses),
	}
}

const processCols = "unit, method, domain, desired_status, restart_policy, config, config_revision, desired_changed_ns, " +
	"desired_changed_by, reported_status, restart_count, exit_code, detail, reported_at_ns, position"

func scanProcess(r projections.Row) (Process, error) {
	var p Process
	var config string
	var rev, changed, restarts, exit, reported, pos int64
	if err := r.Scan(&p.Unit, &p.Method, &p.Domain, &p.DesiredStatus, &p.RestartPolicy, &config, &rev, &changed,
		&p.DesiredChangedBy, &p.ReportedStatus, &restarts, &exit, &p.Detail, &reported, &pos); err != nil {
		return p, err
	}
	var err error
	if p.Config, err = unmarshalMap(config); err != nil {
		return p, err
	}
	p.ConfigRevision, p.DesiredChangedAt, p.RestartCount, p.ExitCode = uint64(rev), fromNanos(changed), uint32(restarts), int32(exit)
	p.ReportedAt, p.Position = fromNanos(reported), uint64(pos)
	return p, nil
}

// parseProcessStream splits "process-<unit>.<method>.<domain>".
func parseProcessStream(stream string) (unit, method, domain string, err error) {
	parts := strings.Split(streamID(stream), ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("process stream %q: want process-<unit>.<method>.<domain>", stream)
	}
	return parts[0], parts[1], parts[2], nil
}

func handleProcesses(ctx context.Context, tx projections.Tx, batch []events.Event) error {
	procs := newCache(func(stream string) (*Process, error) {
		u, m, d, _ := parseProcessStream(stream)
		p, err := scanProcess(tx.QueryRow(ctx, "SELECT "+processCols+" FROM "+tx.Table("processes")+
			" WHERE unit = ? AND method = ? AND domain = ?", u, m, d))
		if err != nil {
			return nil, noRow(err)
		}
		return &p, nil
	}, func(stream string) *Process {
		u, m, d, _ := parseProcessStream(stream)
		return &Process{Unit: u, Method: m, Domain: d, Config: map[string]string{}}
	})
	for _, ev := range batch {
		if _, _, _, err := parseProcessStream(ev.Stream); err != nil {
			return projections.Poison(err)
		}
		msg, err := decode(ev)
		if err != nil {
			return err
		}
		p, err := procs.get(ev.Stream)
		if err != nil {
			return err
		}
		if ev.Position <= p.Position {
			continue
		}
		switch e := msg.(type) {
		case *logbookv1.ProcessDesiredStatusSet:
			p.DesiredStatus = enumWord(e.GetStatus().String(), "PROCESS_DESIRED_STATUS_")
			p.DesiredChangedAt, p.DesiredChangedBy = fromNanos(at(e.GetAt(), ev)), or(e.GetBy(), ev.Metadata.Principal)
		case *logbookv1.ProcessRestartPolicySet:
			p.RestartPolicy = enumWord(e.GetPolicy().String(), "PROCESS_RESTART_POLICY_")
		case *logbookv1.ProcessConfigured:
			p.Config = maps.Clone(e.GetConfig())
			if p.Config == nil {
				p.Config = map[string]string{}
			}
			p.ConfigRevision = e.GetRevision()
		case *logbookv1.ProcessStatusReported:
			p.ReportedStatus = enumWord(e.GetStatus().String(), "PROCESS_STATUS_")
			p.RestartCount, p.ExitCode, p.Detail = e.GetRestartCount(), e.GetExitCode(), e.GetDetail()
			p.ReportedAt = fromNanos(at(e.GetAt(), ev))
		}
		p.Position = ev.Position
	}
	var rows [][]any
	procs.each(func(_ string, p *Process) {
		rows = append(rows, []any{p.Unit, p.Method, p.Domain, p.DesiredStatus, p.RestartPolicy, marshalJSON(p.Config),
			int64(p.ConfigRevision), nanos(p.DesiredChangedAt), p.DesiredChangedBy, p.ReportedStatus, int64(p.RestartCount),
			int64(p.ExitCode), p.Detail, nanos(p.ReportedAt), int64(p.Position)})
	})
	_, err := tx.Upsert(ctx, projections.Upsert{
		Table: "processes", Columns: columns(processCols), Key: []string{"unit", "method", "domain"},
		OnConflict: projections.DoUpdate,
	}, rows)
	return err
}

// ProcessesOfUnit returns the processes of unit, ordered by method and domain.
func ProcessesOfUnit(ctx context.Context, rd Reader, unit string) ([]Process, error) {
	var out []Process
	err := view(ctx, rd, ProcessesName, func(q projections.Querier) error {
		var err error
		out, err = scanAll(ctx, q, "SELECT "+processCols+" FROM "+q.Table("processes")+
			" WHERE unit = ? ORDER BY method, domain", []any{unit}, func(r projections.Rows) (Process, error) { return scanProcess(r) })
		return err
	})
	return out, err
}

// GetProcess returns one process, or ErrNotFound.
func GetProcess(ctx context.Context, rd Reader, unit, method, domain string) (Process, error) {
	var p Process
	err := view(ctx, rd, ProcessesName, func(q projections.Querier) error {
		var err error
		p, err = scanProcess(q.QueryRow(ctx, "SELECT "+processCols+" FROM "+q.Table("processes")+
			" WHERE unit = ? AND method = ? AND domain = ?", unit, method, domain))
		return notFound(err, fmt.Sprintf("process %s.%s.%s", unit, method, domain))
	})
	return p, err
}

// columns splits a column list "a, b, c".
func columns(cols string) []string { return strings.Split(cols, ", ") }
