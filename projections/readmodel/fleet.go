package readmodel

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// FleetName and FleetVersion identify the fleet read model.
const (
	FleetName    = "fleet"
	FleetVersion = 1
)

// Unit is a unit as the fleet read model holds it.
type Unit struct {
	Name     string
	Platform string
	// Labels is never nil.
	Labels          map[string]string
	Channel         string
	ChannelRelease  string // the channel's release the unit last saw
	PinnedRelease   string
	DesiredRelease  string
	ReportedRelease string
	Connected       bool
	AgentVersion    string
	// LastSeen is the newest time the unit was heard from; zero if never.
	LastSeen         time.Time
	RegisteredAt     time.Time
	RegisteredBy     string
	Decommissioned   bool
	DecommissionedAt time.Time
	// Position is the log position of the last event applied.
	Position uint64
}

var fleetTypes = typeNames(
	&logbookv1.UnitRegistered{}, &logbookv1.UnitLabelsSet{}, &logbookv1.UnitLabelsRemoved{},
	&logbookv1.UnitChannelAssigned{}, &logbookv1.UnitChannelReleaseObserved{},
	&logbookv1.UnitReleasePinned{}, &logbookv1.UnitReleaseUnpinned{}, &logbookv1.UnitDesiredReleaseChanged{},
	&logbookv1.UnitConnected{}, &logbookv1.UnitDisconnected{}, &logbookv1.UnitHeartbeatReceived{},
	&logbookv1.UnitReleaseReported{}, &logbookv1.UnitProcessesReported{}, &logbookv1.UnitDecommissioned{},
	&logbookv1.UnitCommandDelivered{}, &logbookv1.UnitCommandSucceeded{}, &logbookv1.UnitCommandFailed{},
)

// Fleet returns the fleet read model: one row per unit (streams
// "unit-<name>") with its platform, labels, channel, releases, connection
// and last-seen time, mirroring the unit aggregate's evolution.
func Fleet() projections.Projection {
	return projections.Projection{
		Name:       FleetName,
		Version:    FleetVersion,
		Filter:     events.Filter{Categories: []string{"unit"}, Types: fleetTypes},
		Migrations: migrationsOf(FleetName),
		Handler:    projections.HandlerFunc(handleFleet),
	}
}

const unitCols = "name, platform, labels, channel, channel_release, pinned_release, desired_release, reported_release, " +
	"connected, agent_version, last_seen_ns, registered_at_ns, registered_by, decommissioned, decommissioned_at_ns, position"

type unitRow struct {
	Unit
	labelsChanged bool
}

func scanUnit(r projections.Row) (Unit, error) {
	var u Unit
	var labels string
	var lastSeen, regAt, decomAt, pos int64
	if err := r.Scan(&u.Name, &u.Platform, &labels, &u.Channel, &u.ChannelRelease, &u.PinnedRelease, &u.DesiredRelease,
		&u.ReportedRelease, &u.Connected, &u.AgentVersion, &lastSeen, &regAt, &u.RegisteredBy, &u.Decommissioned,
		&decomAt, &pos); err != nil {
		return u, err
	}
	var err error
	if u.Labels, err = unmarshalMap(labels); err != nil {
		return u, fmt.Errorf("unit %s labels: %w", u.Name, err)
	}
	u.LastSeen, u.RegisteredAt, u.DecommissionedAt, u.Position = fromNanos(lastSeen), fromNanos(regAt), fromNanos(decomAt), uint64(pos)
	return u, nil
}

func handleFleet(ctx context.Context, tx projections.Tx, batch []events.Event) error {
	units := newCache(func(name string) (*unitRow, error) {
		u, err := scanUnit(tx.QueryRow(ctx, "SELECT "+unitCols+" FROM "+tx.Table("units")+" WHERE name = ?", name))
		if err != nil {
			return nil, noRow(err)
		}
		return &unitRow{Unit: u}, nil
	}, func(name string) *unitRow { return &unitRow{Unit: Unit{Name: name, Labels: map[string]string{}}} })
	for _, ev := range batch {
		msg, err := decode(ev)
		if err != nil {
			return err
		}
		u, err := units.get(streamID(ev.Stream))
		if err != nil {
			return err
		}
		if ev.Position <= u.Position {
			continue // already applied
		}
		evolveUnit(u, msg, ev)
		u.Position = ev.Position
	}
	var rows, labelRows [][]any
	var relabelled []any
	units.each(func(name string, u *unitRow) {
		rows = append(rows, []any{u.Name, u.Platform, marshalJSON(u.Labels), u.Channel, u.ChannelRelease, u.PinnedRelease,
			u.DesiredRelease, u.ReportedRelease, u.Connected, u.AgentVersion, nanos(u.LastSeen), nanos(u.RegisteredAt),
			u.RegisteredBy, u.Decommissioned, nanos(u.DecommissionedAt), int64(u.Position)})
		if u.labelsChanged {
			relabelled = append(relabelled, name)
			for _, k := range slices.Sorted(maps.Keys(u.Labels)) {
				labelRows = append(labelRows, []any{name, k, u.Labels[k]})
			}
		}
	})
	if _, err := tx.Upsert(ctx, projections.Upsert{
		Table: "units", Columns: columns(unitCols), Key: []string{"name"},
		OnConflict: projections.DoUpdate,
	}, rows); err != nil {
		return err
	}
	for chunk := range slices.Chunk(relabelled, 500) {
		if _, err := tx.Exec(ctx, "DELETE FROM "+tx.Table("labels")+" WHERE unit IN ("+placeholders(len(chunk))+")", chunk...); err != nil {
			return err
		}
	}
	if len(labelRows) > 0 {
		if _, err := tx.Upsert(ctx, projections.Upsert{
			Table: "labels", Columns: []string{"unit", "key", "value"}, Key: []string{"unit", "key"},
			OnConflict: projections.DoUpdate,
		}, labelRows); err != nil {
			return err
		}
	}
	return nil
}

// evolveUnit applies one unit event, as the unit aggregate's Evolve does.
func evolveUnit(u *unitRow, msg any, ev events.Event) {
	seen := func(ns int64) {
		if t := fromNanos(ns); t.After(u.LastSeen) {
			u.LastSeen = t
		}
	}
	switch e := msg.(type) {
	case *logbookv1.UnitRegistered:
		u.Platform = e.GetPlatform()
		u.RegisteredAt = fromNanos(at(e.GetAt(), ev))
		u.RegisteredBy = or(e.GetBy(), ev.Metadata.Principal)
		u.Labels = maps.Clone(e.GetLabels())
		if u.Labels == nil {
			u.Labels = map[string]string{}
		}
		u.Decommissioned, u.DecommissionedAt = false, time.Time{}
		u.labelsChanged = true
	case *logbookv1.UnitLabelsSet:
		maps.Copy(u.Labels, e.GetLabels())
		u.labelsChanged = true
	case *logbookv1.UnitLabelsRemoved:
		for _, k := range e.GetKeys() {
			delete(u.Labels, k)
		}
		u.labelsChanged = true
	case *logbookv1.UnitChannelAssigned:
		u.Channel, u.ChannelRelease = e.GetChannel(), e.GetChannelRelease()
	case *logbookv1.UnitChannelReleaseObserved:
		u.ChannelRelease = e.GetRelease()
	case *logbookv1.UnitReleasePinned:
		u.PinnedRelease = e.GetRelease()
	case *logbookv1.UnitReleaseUnpinned:
		u.PinnedRelease = ""
	case *logbookv1.UnitDesiredReleaseChanged:
		u.DesiredRelease = e.GetRelease()
	case *logbookv1.UnitConnected:
		u.Connected, u.AgentVersion = true, e.GetAgentVersion()
		seen(at(e.GetAt(), ev))
	case *logbookv1.UnitDisconnected:
		u.Connected = false
		seen(at(e.GetAt(), ev))
	case *logbookv1.UnitHeartbeatReceived:
		seen(at(e.GetAt(), ev))
	case *logbookv1.UnitReleaseReported:
		u.ReportedRelease = e.GetRelease()
		seen(at(e.GetAt(), ev))
	case *logbookv1.UnitProcessesReported:
		seen(at(e.GetAt(), ev))
	case *logbookv1.UnitCommandDelivered:
		seen(at(e.GetAt(), ev))
	case *logbookv1.UnitCommandSucceeded:
		seen(at(e.GetAt(), ev))
	case *logbookv1.UnitCommandFailed:
		seen(at(e.GetAt(), ev))
	case *logbookv1.UnitDecommissioned:
		u.Decommissioned, u.Connected = true, false
		u.DecommissionedAt = fromNanos(at(e.GetAt(), ev))
	}
}

// UnitQuery selects units for ListUnits. Zero fields select everything.
type UnitQuery struct {
	// Selector is a label selector (see ParseSelector), e.g. "site=north,tier=edge".
	Selector string
	// Channel, when set, selects the units assigned to it.
	Channel string
	// Connected, when set, selects connected (true) or disconnected units.
	Connected *bool
	// Decommissioned units are left out unless set.
	IncludeDecommissioned bool
	// After pages: only units named after it (the last Name of the previous page).
	After string
	// Limit bounds the result (DefaultLimit when 0, at most MaxLimit).
	Limit int
}

// ListUnits returns the units q selects, ordered by name. A malformed
// selector gives ErrInvalidQuery.
func ListUnits(ctx context.Context, rd Reader, q UnitQuery) ([]Unit, error) {
	sel, err := ParseSelector(q.Selector)
	if err != nil {
		return nil, err
	}
	var out []Unit
	err = view(ctx, rd, FleetName, func(qr projections.Querier) error {
		var w where
		labels := qr.Table("labels")
		for _, r := range sel {
			switch r.Op {
			case OpEquals:
				w.add("EXISTS (SELECT 1 FROM "+labels+" l WHERE l.unit = u.name AND l.key = ? AND l.value = ?)", r.Key, r.Value)
			case OpNotEquals:
				w.add("NOT EXISTS (SELECT 1 FROM "+labels+" l WHERE l.unit = u.name AND l.key = ? AND l.value = ?)", r.Key, r.Value)
			case OpExists:
				w.add("EXISTS (SELECT 1 FROM "+labels+" l WHERE l.unit = u.name AND l.key = ?)", r.Key)
			case OpNotExists:
				w.add("NOT EXISTS (SELECT 1 FROM "+labels+" l WHERE l.unit = u.name AND l.key = ?)", r.Key)
			}
		}
		if q.Channel != "" {
			w.add("u.channel = ?", q.Channel)
		}
		if q.Connected != nil {
			w.add("u.connected = ?", *q.Connected)
		}
		if !q.IncludeDecommissioned {
			w.add("u.decommissioned = ?", false)
		}
		if q.After != "" {
			w.add("u.name > ?", q.After)
		}
		query := "SELECT " + prefixCols("u.", unitCols) + " FROM " + qr.Table("units") + " u" + w.String() +
			" ORDER BY u.name LIMIT ?"
		out, err = scanAll(ctx, qr, query, append(w.args, limitOf(q.Limit)), func(r projections.Rows) (Unit, error) { return scanUnit(r) })
		return err
	})
	return out, err
}

// GetUnit returns the named unit, or ErrNotFound.
func GetUnit(ctx context.Context, rd Reader, name string) (Unit, error) {
	var u Unit
	err := view(ctx, rd, FleetName, func(q projections.Querier) error {
		var err error
		u, err = scanUnit(q.QueryRow(ctx, "SELECT "+unitCols+" FROM "+q.Table("units")+" WHERE name = ?", name))
		return notFound(err, "unit "+name)
	})
	return u, err
}

func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }
