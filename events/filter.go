package events

import "slices"

// Filter selects events by stream category and by payload type. Empty lists
// select everything; both lists must match when both are set.
type Filter struct {
	// Categories, e.g. "unit", "readings".
	Categories []string
	// Types are payload full names, e.g. "logbook.v1.UnitRegistered".
	Types []string
}

// IsZero reports whether f selects every event.
func (f Filter) IsZero() bool { return len(f.Categories) == 0 && len(f.Types) == 0 }

// Match reports whether an event of the given stream and type is selected.
func (f Filter) Match(stream, typ string) bool {
	if len(f.Categories) > 0 && !slices.Contains(f.Categories, Category(stream)) {
		return false
	}
	return len(f.Types) == 0 || slices.Contains(f.Types, typ)
}
