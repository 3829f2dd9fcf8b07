package projections

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"github.com/logbook-fleet/logbook/events"
)

// Projection is a read model fed from the log: a name, a version, the events
// it wants and the handler that turns batches of them into rows.
//
// Bumping Version rebuilds the projection from position 1 into new tables
// (named by TableName) while the current version keeps serving; the runner
// switches to the new version once it has caught up and drops the old one.
type Projection struct {
	// Name identifies the projection and prefixes its tables; see
	// ValidateName.
	Name string
	// Version is 1..MaxVersion. Each version has its own tables and
	// checkpoint (one set per generation, see VersionOfGeneration).
	Version int
	// Filter selects the events given to Handler; the zero Filter selects
	// all. The checkpoint still advances over events it does not select.
	Filter events.Filter
	// Migrations holds the schema as versioned SQL files at its root:
	// "001_init.sql", "002_index.sql", ... applied in name order, each
	// once, in one transaction at start. A file "001_init.<dialect>.sql"
	// (dialect "sqlite" or "postgres") replaces "001_init.sql" on that
	// dialect. Files are text/template: {{table "units"}} expands to the
	// version's table name, {{.Dialect}} to the dialect. May be nil.
	Migrations fs.FS
	// Handler applies batches. Required.
	Handler Handler
}

// Handler applies a batch of events to a projection's tables.
//
// Handle runs inside the transaction that also records the checkpoint
// after the batch's last event, so its writes and the checkpoint commit
// together or not at all. The batch is non-empty, in position order, and
// contains only events the projection's Filter selects. Handle must not
// keep tx or batch after it returns.
//
// An error rolls the whole batch back. The runner retries it with backoff
// (one event at a time, so a failure is pinned to a position) and never
// skips an event; an error marked with Poison (or a decode error, see
// ErrPoison) stops the projection instead.
type Handler interface {
	Handle(ctx context.Context, tx Tx, batch []events.Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, tx Tx, batch []events.Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, tx Tx, batch []events.Event) error {
	return f(ctx, tx, batch)
}

// MaxNameLen is the longest projection name; with the version and a table
// suffix the result stays under PostgreSQL's 63-byte identifier limit.
const MaxNameLen = 32

var (
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	versionRE = regexp.MustCompile(`^v[0-9]+$`)
)

// ValidateName checks a projection name: lowercase letters, digits and
// single underscores, starting with a letter, at most MaxNameLen bytes, no
// segment that looks like a version ("v2": it would make table prefixes
// ambiguous) and not starting with "logbook" (reserved for the sinks'
// bookkeeping tables). The error wraps ErrInvalidName.
func ValidateName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxNameLen))
	case !nameRE.MatchString(name):
		return bad("want lowercase letters, digits and single underscores, starting with a letter")
	case strings.HasPrefix(name, "logbook"):
		return bad(`names starting with "logbook" are reserved`)
	}
	for seg := range strings.SplitSeq(name, "_") {
		if versionRE.MatchString(seg) {
			return bad(fmt.Sprintf("segment %q looks like a version", seg))
		}
	}
	return nil
}

// validateTable checks the table part of a versioned table name.
func validateTable(table string) error {
	if len(table) == 0 || len(table) > 20 || !nameRE.MatchString(table) {
		return fmt.Errorf("%w: table %q: want 1-20 lowercase letters, digits and single underscores", ErrInvalidName, table)
	}
	return nil
}

// TableName returns the physical name of a projection version's table:
// TableName("fleet", 2, "units") = "fleet_v2_units". It panics on an
// invalid table name (a programming error); the name is assumed valid.
func TableName(name string, version int, table string) string {
	if err := validateTable(table); err != nil {
		panic(err)
	}
	return TablePrefix(name, version) + table
}

// TablePrefix returns the prefix every table of a projection version
// carries: "fleet_v2_".
func TablePrefix(name string, version int) string {
	return name + "_v" + strconv.Itoa(version) + "_"
}

// VersionOfTable reports which version of projection name the physical
// table belongs to, or false when it is not one of its tables.
func VersionOfTable(name, table string) (int, bool) {
	rest, ok := strings.CutPrefix(table, name+"_v")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "_")
	if !ok || num == "" {
		return 0, false
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 || strconv.Itoa(v) != num {
		return 0, false
	}
	return v, true
}

func (p Projection) validate() error {
	var errs []error
	if err := ValidateName(p.Name); err != nil {
		errs = append(errs, err)
	}
	if p.Version < 1 || p.Version > MaxVersion {
		errs = append(errs, fmt.Errorf("version %d: must be 1..%d", p.Version, MaxVersion))
	}
	if p.Handler == nil {
		errs = append(errs, errors.New("nil Handler"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("projection %q: %w", p.Name, err)
	}
	return nil
}
