package readmodel

import (
	"context"
	"slices"
	"time"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/projections"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// ReleasesName and ReleasesVersion identify the releases and channels read
// model.
const (
	ReleasesName    = "releases"
	ReleasesVersion = 1
)

// Release is a published release.
type Release struct {
	Version     string
	PublishedAt time.Time
	PublishedBy string
	// Artifacts is the number of artifacts; Platforms their distinct
	// platforms, sorted.
	Artifacts  int
	Platforms  []string
	Yanked     bool
	YankedAt   time.Time
	YankedBy   string
	YankReason string
	// PublishedPosition is the log position of ReleasePublished; lists
	// order and page by it.
	PublishedPosition uint64
	// Position is the log position of the last event applied.
	Position uint64
}

// Channel is a release channel.
type Channel struct {
	Name           string
	Description    string
	CreatedAt      time.Time
	CreatedBy      string
	CurrentRelease string
	// Flags are the feature flags; never nil.
	Flags map[string]string
	// UpdatedAt is the time of the last event applied.
	UpdatedAt time.Time
	Position  uint64
}

// Promotion kinds.
const (
	PromotionPromote  = "promote"
	PromotionRollback = "rollback"
)

// Promotion is one change of a channel's current release.
type Promotion struct {
	// Position is the log position of the event; it orders the history.
	Position uint64
	Channel  string
	// Kind is PromotionPromote or PromotionRollback.
	Kind string
	// Release is the release the channel moved to, Previous the one it left.
	Release  string
	Previous string
	Reason   string
	By       string
	At       time.Time
}

var releaseTypes = typeNames(&logbookv1.ReleasePublished{}, &logbookv1.ReleaseYanked{},
	&logbookv1.ChannelCreated{}, &logbookv1.ChannelReleasePromoted{}, &logbookv1.ChannelRolledBack{},
	&logbookv1.ChannelFeatureFlagSet{}, &logbookv1.ChannelFeatureFlagUnset{})

// Releases returns the releases read model: releases (streams
// "release-<version>"), channels (streams "channel-<name>") and every
// channel's promotion and rollback history.
func Releases() projections.Projection {
	return projections.Projection{
		Name:       ReleasesName,
		Version:    ReleasesVersion,
		Filter:     events.Filter{Categories: []string{"release", "channel"}, Types: releaseTypes},
		Migrations: migrationsOf(ReleasesName),
		Handler:    projections.HandlerFunc(handleReleases),
	}
}

const releaseCols = "version, published_at_ns, published_by, artifacts, platforms, yanked, yanked_at_ns, yanked_by, " +
	"yank_reason, published_position, position"

const channelCols = "name, description, created_at_ns, created_by, current_release, flags, updated_at_ns, position"

const promotionCols = "position, channel, kind, release_version, previous, reason, by_principal, at_ns"

func scanRelease(r projections.Row) (Release, error) {
	var rel Release
	var published, yanked, artifacts, ppos, pos int64
	var platforms string
	if err := r.Scan(&rel.Version, &published, &rel.PublishedBy, &artifacts, &platforms, &rel.Yanked, &yanked,
		&rel.YankedBy, &rel.YankReason, &ppos, &pos); err != nil {
		return rel, err
	}
	var err error
	if rel.Platforms, err = unmarshalList(platforms); err != nil {
		return rel, err
	}
	rel.PublishedAt, rel.Artifacts, rel.YankedAt = fromNanos(published), int(artifacts), fromNanos(yanked)
	rel.PublishedPosition, rel.Position = uint64(ppos), uint64(pos)
	return rel, nil
}

func scanChannel(r projections.Row) (Channel, error) {
	var c Channel
	var created, updated, pos int64
	var flags string
	if err := r.Scan(&c.Name, &c.Description, &created, &c.CreatedBy, &c.CurrentRelease, &flags, &updated, &pos); err != nil {
		return c, err
	}
	var err error
	if c.Flags, err = unmarshalMap(flags); err != nil {
		return c, err
	}
	c.CreatedAt, c.UpdatedAt, c.Position = fromNanos(created), fromNanos(updated), uint64(pos)
	return c, nil
}

func scanPromotion(r projections.Row) (Promotion, error) {
	var p Promotion
	var pos, at int64
	if err := r.Scan(&pos, &p.Channel, &p.Kind, &p.Release, &p.Previous, &p.Reason, &p.By, &at); err != nil {
		return p, err
	}
	p.Position, p.At = uint64(pos), fromNanos(at)
	return p, nil
}

func handleReleases(ctx context.Context, tx projections.Tx, batch []events.Event) error {
	releases := newCache(func(v string) (*Release, error) {
		r, err := scanRelease(tx.QueryRow(ctx, "SELECT "+releaseCols+" FROM "+tx.Table("releases")+" WHERE version = ?", v))
		if err != nil {
			return nil, noRow(err)
		}
		return &r, nil
	}, func(v string) *Release { return &Release{Version: v, Platforms: []string{}} })
	channels := newCache(func(name string) (*Channel, error) {
		c, err := scanChannel(tx.QueryRow(ctx, "SELECT "+channelCols+" FROM "+tx.Table("channels")+" WHERE name = ?", name))
		if err != nil {
			return nil, noRow(err)
		}
		return &c, nil
	}, func(name string) *Channel { return &Channel{Name: name, Flags: map[string]string{}} })
	var promotions [][]any
	for _, ev := range batch {
		msg, err := decode(ev)
		if err != nil {
			return err
		}
		switch events.Category(ev.Stream) {
		case "release":
			r, err := releases.get(streamID(ev.Stream))
			if err != nil {
				return err
			}
			if ev.Position <= r.Position {
				continue
			}
			switch e := msg.(type) {
			case *logbookv1.ReleasePublished:
				r.PublishedAt, r.PublishedBy = fromNanos(at(e.GetPublishedAt(), ev)), or(e.GetPublishedBy(), ev.Metadata.Principal)
				r.Artifacts, r.Platforms = len(e.GetArtifacts()), nil
				for _, a := range e.GetArtifacts() {
					if !slices.Contains(r.Platforms, a.GetPlatform()) {
						r.Platforms = append(r.Platforms, a.GetPlatform())
					}
				}
				slices.Sort(r.Platforms)
				r.PublishedPosition = ev.Position
			case *logbookv1.ReleaseYanked:
				r.Yanked, r.YankedAt = true, fromNanos(at(e.GetYankedAt(), ev))
				r.YankedBy, r.YankReason = or(e.GetYankedBy(), ev.Metadata.Principal), e.GetReason()
			}
			r.Position = ev.Position
		case "channel":
			c, err := channels.get(streamID(ev.Stream))
			if err != nil {
				return err
			}
			if ev.Position <= c.Position {
				continue
			}
			switch e := msg.(type) {
			case *logbookv1.ChannelCreated:
				c.Description, c.CreatedBy = e.GetDescription(), or(e.GetCreatedBy(), ev.Metadata.Principal)
				c.CreatedAt = fromNanos(at(e.GetCreatedAt(), ev))
			case *logbookv1.ChannelReleasePromoted:
				promotions = append(promotions, []any{int64(ev.Position), c.Name, PromotionPromote, e.GetVersion(),
					or(e.GetPreviousVersion(), c.CurrentRelease), e.GetReason(), or(e.GetPromotedBy(), ev.Metadata.Principal),
					at(e.GetPromotedAt(), ev)})
				c.CurrentRelease = e.GetVersion()
			case *logbookv1.ChannelRolledBack:
				promotions = append(promotions, []any{int64(ev.Position), c.Name, PromotionRollback, e.GetToVersion(),
					or(e.GetFromVersion(), c.CurrentRelease), e.GetReason(), or(e.GetRolledBackBy(), ev.Metadata.Principal),
					at(e.GetRolledBackAt(), ev)})
				c.CurrentRelease = e.GetToVersion()
			case *logbookv1.ChannelFeatureFlagSet:
				c.Flags[e.GetKey()] = e.GetValue()
			case *logbookv1.ChannelFeatureFlagUnset:
				delete(c.Flags, e.GetKey())
			}
			c.Position, c.UpdatedAt = ev.Position, ev.Time
		}
	}
	var rrows, crows [][]any
	releases.each(func(_ string, r *Release) {
		platforms := r.Platforms
		if platforms == nil {
			platforms = []string{}
		}
		rrows = append(rrows, []any{r.Version, nanos(r.PublishedAt), r.PublishedBy, int64(r.Artifacts), marshalJSON(platforms),
			r.Yanked, nanos(r.YankedAt), r.YankedBy, r.YankReason, int64(r.PublishedPosition), int64(r.Position)})
	})
	channels.each(func(_ string, c *Channel) {
		crows = append(crows, []any{c.Name, c.Description, nanos(c.CreatedAt), c.CreatedBy, c.CurrentRelease,
			marshalJSON(c.Flags), nanos(c.UpdatedAt), int64(c.Position)})
	})
	for _, u := range []struct {
		up   projections.Upsert
		rows [][]any
	}{
		{projections.Upsert{Table: "releases", Columns: columns(releaseCols), Key: []string{"version"}, OnConflict: projections.DoUpdate}, rrows},
		{projections.Upsert{Table: "channels", Columns: columns(channelCols), Key: []string{"name"}, OnConflict: projections.DoUpdate}, crows},
		{projections.Upsert{Table: "promotions", Columns: columns(promotionCols), Key: []string{"position"}, OnConflict: projections.DoNothing}, promotions},
	} {
		if len(u.rows) == 0 {
			continue
		}
		if _, err := tx.Upsert(ctx, u.up, u.rows); err != nil {
			return err
		}
	}
	return nil
}

// ReleaseQuery selects releases for ListReleases.
type ReleaseQuery struct {
	// Yanked releases are left out unless set.
	IncludeYanked bool
	// Before pages: only releases published before this position (the
	// last PublishedPosition of the previous page).
	Before uint64
	// Limit bounds the result (DefaultLimit when 0, at most MaxLimit).
	Limit int
}

// ListReleases returns releases, newest published first.
func ListReleases(ctx context.Context, rd Reader, q ReleaseQuery) ([]Release, error) {
	var out []Release
	err := view(ctx, rd, ReleasesName, func(qr projections.Querier) error {
		var w where
		if !q.IncludeYanked {
			w.add("yanked = ?", false)
		}
		if q.Before != 0 {
			w.add("published_position < ?", int64(q.Before))
		}
		var err error
		out, err = scanAll(ctx, qr, "SELECT "+releaseCols+" FROM "+qr.Table("releases")+w.String()+
			" ORDER BY published_position DESC LIMIT ?", append(w.args, limitOf(q.Limit)),
			func(r projections.Rows) (Release, error) { return scanRelease(r) })
		return err
	})
	return out, err
}

// GetRelease returns one release, or ErrNotFound.
func GetRelease(ctx context.Context, rd Reader, version string) (Release, error) {
	var r Release
	err := view(ctx, rd, ReleasesName, func(q projections.Querier) error {
		var err error
		r, err = scanRelease(q.QueryRow(ctx, "SELECT "+releaseCols+" FROM "+q.Table("releases")+" WHERE version = ?", version))
		return notFound(err, "release "+version)
	})
	return r, err
}

// ListChannels returns every channel, ordered by name.
func ListChannels(ctx context.Context, rd Reader) ([]Channel, error) {
	var out []Channel
	err := view(ctx, rd, ReleasesName, func(q projections.Querier) error {
		var err error
		out, err = scanAll(ctx, q, "SELECT "+channelCols+" FROM "+q.Table("channels")+" ORDER BY name", nil,
			func(r projections.Rows) (Channel, error) { return scanChannel(r) })
		return err
	})
	return out, err
}

// GetChannel returns one channel, or ErrNotFound.
func GetChannel(ctx context.Context, rd Reader, name string) (Channel, error) {
	var c Channel
	err := view(ctx, rd, ReleasesName, func(q projections.Querier) error {
		var err error
		c, err = scanChannel(q.QueryRow(ctx, "SELECT "+channelCols+" FROM "+q.Table("channels")+" WHERE name = ?", name))
		return notFound(err, "channel "+name)
	})
	return c, err
}

// HistoryQuery selects promotion history rows for PromotionHistory.
type HistoryQuery struct {
	// Channel, when set, selects that channel's history.
	Channel string
	// Release, when set, selects the rows that moved a channel to it.
	Release string
	// Before pages: only rows before this position (the last Position of
	// the previous page).
	Before uint64
	// Limit bounds the result (DefaultLimit when 0, at most MaxLimit).
	Limit int
}

// PromotionHistory returns promotions and rollbacks, newest first.
func PromotionHistory(ctx context.Context, rd Reader, q HistoryQuery) ([]Promotion, error) {
	var out []Promotion
	err := view(ctx, rd, ReleasesName, func(qr projections.Querier) error {
		var w where
		if q.Channel != "" {
			w.add("channel = ?", q.Channel)
		}
		if q.Release != "" {
			w.add("release_version = ?", q.Release)
		}
		if q.Before != 0 {
			w.add("position < ?", int64(q.Before))
		}
		var err error
		out, err = scanAll(ctx, qr, "SELECT "+promotionCols+" FROM "+qr.Table("promotions")+w.String()+
			" ORDER BY position DESC LIMIT ?", append(w.args, limitOf(q.Limit)),
			func(r projections.Rows) (Promotion, error) { return scanPromotion(r) })
		return err
	})
	return out, err
}
