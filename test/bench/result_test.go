package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A closed-loop result carries its CPU figures after the latencies; a
// result without a CPU measurement has none.
func TestResultJSONCPU(t *testing.T) {
	r := Result{Scenario: "append", Subject: "logbook", Params: []Param{P("writers", 64)},
		Events: 300000, Seconds: 2, OpsPerS: 150000, HasLatency: true, P50us: 400, P99us: 1900,
		HasCPU: true, CPUSeconds: 2.7}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"scenario":"append","subject":"logbook","writers":64,"events":300000,"seconds":2,"ops_per_s":150000,"p50_us":400,"p99_us":1900,"cpu_cores":1.35,"cpu_us_per_op":9}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	r.HasCPU = false
	if b, _ := json.Marshal(r); strings.Contains(string(b), "cpu_") {
		t.Fatalf("result without a CPU measurement: %s", b)
	}
}

// RunLoad measures the process's CPU over its window where it can.
func TestRunLoadMeasuresCPU(t *testing.T) {
	if _, ok := processCPU(); !ok {
		t.Skip("no CPU accounting on this platform")
	}
	stats, err := RunLoad(t.Context(), Load{Writers: 1, PerCall: 1, Measure: 50 * time.Millisecond,
		NewOp: func(int) (Op, error) {
			return func(context.Context) error {
				x := 0
				for i := range 10000 {
					x += i
				}
				_ = x
				return nil
			}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !stats.HasCPU || stats.CPU <= 0 {
		t.Fatalf("a busy writer's window measured CPU %v (has %v)", stats.CPU, stats.HasCPU)
	}
}
