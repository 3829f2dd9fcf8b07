package main

import (
	"context"
	"slices"
)

// Scenario is one benchmark: it measures Logbook and, in the same run, the
// peers and physical limits its targets compare against.
type Scenario struct {
	Name  string
	About string
	// Run performs every measurement of the scenario. A measurement that
	// fails is returned as a Result with Err set, so the others still
	// count; a non-nil error means the scenario could not go on.
	Run func(ctx context.Context, cfg *Config) ([]Result, error)
	// Targets are the ratios the scenario is judged by, evaluated on the
	// results of the same run.
	Targets []Target
}

// order is the order scenarios run in by default; scenarios not listed
// here run after, by name.
var order = []string{"append", "replay", "recover", "command", "command-rtt", "ingest", "project", "raft-append"}

var registry []Scenario

// register adds a scenario; each scenario file calls it from init.
func register(s Scenario) {
	if _, dup := lookupScenario(s.Name); dup {
		panic("bench: scenario " + s.Name + " registered twice")
	}
	registry = append(registry, s)
	rank := func(name string) int {
		if i := slices.Index(order, name); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(registry, func(a, b Scenario) int {
		if ra, rb := rank(a.Name), rank(b.Name); ra != rb {
			return ra - rb
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
}

func lookupScenario(name string) (Scenario, bool) {
	for _, s := range registry {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

func scenarioNames() []string {
	names := make([]string, len(registry))
	for i, s := range registry {
		names[i] = s.Name
	}
	return names
}
