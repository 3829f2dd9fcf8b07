package readmodel

import (
	"context"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
)

// AuditName and AuditVersion identify the audit timeline read model.
const (
	AuditName    = "audit"
	AuditVersion = 1
)

// ReadingsCategory is the stream category of readings ("readings-<unit>"),
// which the audit timeline leaves out.
const ReadingsCategory = "readings"

// AuditEntry is one event of the log in the audit timeline.
type AuditEntry struct {
	Position      uint64
	Time          time.Time
	Stream        string
	Version       uint64 // within the stream
	Category      string
	Type          string
	Principal     string
	CorrelationID string
	CausationID   string
	EventID       string
}

// Audit returns the audit timeline read model: who did what, when, for
// every event of the log except readings. Rows are keyed by position and
// written with ON CONFLICT DO NOTHING.
func Audit() projections.Projection {
	return projections.Projection{
		Name:       AuditName,
		Version:    AuditVersion,
		Migrations: migrationsOf(AuditName),
		Handler:    projections.HandlerFunc(handleAudit),
	}
}

const auditCols = "position, time_ns, stream, version, category, type, principal, correlation_id, causation_id, event_id"

func handleAudit(ctx context.Context, tx projections.Tx, batch []events.Event) error {
	rows := make([][]any, 0, len(batch))
	for _, ev := range batch {
		cat := events.Category(ev.Stream)
		if cat == ReadingsCategory {
			continue
		}
		rows = append(rows, []any{int64(ev.Position), nanos(ev.Time), ev.Stream, int64(ev.Version), cat, ev.Type,
			ev.Metadata.Principal, ev.Metadata.CorrelationID, ev.Metadata.CausationID, ev.ID.String()})
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := tx.Upsert(ctx, projections.Upsert{
		Table: "events", Columns: columns(auditCols), Key: []string{"position"}, OnConflict: projections.DoNothing,
	}, rows)
	return err
}

func scanAudit(r projections.Row) (AuditEntry, error) {
	var a AuditEntry
	var pos, t, v int64
	if err := r.Scan(&pos, &t, &a.Stream, &v, &a.Category, &a.Type, &a.Principal, &a.CorrelationID, &a.CausationID, &a.EventID); err != nil {
		return a, err
	}
	a.Position, a.Time, a.Version = uint64(pos), fromNanos(t), uint64(v)
	return a, nil
}

// AuditQuery selects audit entries. Zero fields select everything; set
// fields must all match.
type AuditQuery struct {
	Stream        string
	Category      string
	Principal     string
	CorrelationID string
	Type          string
	// Since and Until bound the event time: Since <= Time < Until.
	Since, Until time.Time
	// After and Before bound the position: After < Position < Before.
	// Before also pages: pass the last Position of the previous page.
	After, Before uint64
	// Limit bounds the result (DefaultLimit when 0, at most MaxLimit).
	Limit int
	// Oldest returns the oldest entries first (lowest position) instead
	// of the newest; After then pages forward: pass the last Position of
	// the previous page.
	Oldest bool
}

// AuditTimeline returns the entries q selects, newest (highest position)
// first, or oldest first with q.Oldest. Until before Since gives
// ErrInvalidQuery.
func AuditTimeline(ctx context.Context, rd Reader, q AuditQuery) ([]AuditEntry, error) {
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return nil, errInvalidRange(q.Since, q.Until)
	}
	var out []AuditEntry
	err := view(ctx, rd, AuditName, func(qr projections.Querier) error {
		var w where
		for _, f := range []struct{ col, v string }{
			{"stream", q.Stream}, {"category", q.Category}, {"principal", q.Principal},
			{"correlation_id", q.CorrelationID}, {"type", q.Type},
		} {
			if f.v != "" {
				w.add(f.col+" = ?", f.v)
			}
		}
		if !q.Since.IsZero() {
			w.add("time_ns >= ?", q.Since.UnixNano())
		}
		if !q.Until.IsZero() {
			w.add("time_ns < ?", q.Until.UnixNano())
		}
		if q.After != 0 {
			w.add("position > ?", int64(q.After))
		}
		if q.Before != 0 {
			w.add("position < ?", int64(q.Before))
		}
		order := " ORDER BY position DESC LIMIT ?"
		if q.Oldest {
			order = " ORDER BY position LIMIT ?"
		}
		var err error
		out, err = scanAll(ctx, qr, "SELECT "+auditCols+" FROM "+qr.Table("events")+w.String()+order,
			append(w.args, limitOf(q.Limit)),
			func(r projections.Rows) (AuditEntry, error) { return scanAudit(r) })
		return err
	})
	return out, err
}
