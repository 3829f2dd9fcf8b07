package main

import (
	"context"
	"fmt"
	"slices"
)

// Case is one closed-loop measurement of a scenario: a subject with its
// parameters.
type Case struct {
	Subject string
	Params  []Param
	Run     func(ctx context.Context) (LoadStats, error)
}

// RunCases measures each case cfg.Rounds times, interleaved (round 1 of every
// case, then round 2, ...) so that a change in the machine's load hits all
// subjects alike, and reports for each case the round with the median
// ops/s (its latency figures too). With more than one round the result
// carries "rounds". A case that fails in any round is reported failed and
// not run again. Cases whose subject cfg does not want are skipped.
func RunCases(ctx context.Context, cfg *Config, scenario string, cases []Case) ([]Result, error) {
	rounds := max(cfg.Rounds, 1)
	runs := make([][]Result, len(cases))
	failures := make([]*Result, len(cases))
	for round := 1; round <= rounds; round++ {
		for i, c := range cases {
			if err := ctx.Err(); err != nil {
				return collect(cases, runs, failures), err
			}
			if !cfg.Wants(c.Subject) || failures[i] != nil {
				continue
			}
			params := c.Params
			if rounds > 1 {
				params = append(slices.Clip(params), P("rounds", int64(rounds)))
			}
			tag := ""
			if rounds > 1 {
				tag = fmt.Sprintf(" [%d/%d]", round, rounds)
			}
			stats, err := c.Run(ctx)
			if err != nil {
				r := failed(scenario, c.Subject, err, params...)
				failures[i] = &r
				cfg.Logf("%-40s FAILED: %s", r.Label()+tag, oneLine(err.Error(), 200))
				continue
			}
			r := stats.Result(scenario, c.Subject, params...)
			runs[i] = append(runs[i], r)
			cfg.Logf("%-40s %12s ops/s  p50 %7s µs  p99 %7s µs", r.Label()+tag, fmtInt(r.OpsPerS), fmtFloat(r.P50us), fmtFloat(r.P99us))
		}
	}
	return collect(cases, runs, failures), nil
}

func collect(cases []Case, runs [][]Result, failures []*Result) []Result {
	var out []Result
	for i := range cases {
		switch {
		case failures[i] != nil:
			out = append(out, *failures[i])
		case len(runs[i]) > 0:
			rs := slices.Clone(runs[i])
			slices.SortFunc(rs, func(a, b Result) int {
				switch {
				case a.OpsPerS < b.OpsPerS:
					return -1
				case a.OpsPerS > b.OpsPerS:
					return 1
				}
				return 0
			})
			out = append(out, rs[len(rs)/2])
		}
	}
	return out
}
