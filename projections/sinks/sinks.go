// Package sinks links every projection sink into the binary, so
// projections.OpenSink knows their URL schemes. It is the one place that
// imports them all; cmd/ imports it for its side effect:
//
//	import _ "github.com/logbook-fleet/logbook/projections/sinks"
//
//	sink, err := projections.OpenSink(ctx, "sqlite:///var/lib/logbook/read.db")
package sinks

import (
	_ "github.com/logbook-fleet/logbook/projections/postgres" // postgres://, postgresql://
	_ "github.com/logbook-fleet/logbook/projections/sqlite"   // sqlite:///path, sqlite::memory:
)
