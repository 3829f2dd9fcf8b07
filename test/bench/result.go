package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Param is one scenario parameter of a measurement, e.g. writers=64.
type Param struct {
	Key   string
	Value int64
}

// P is shorthand for a Param.
func P(key string, value int64) Param { return Param{key, value} }

// Result is one measurement. Its JSON form is, in this order: scenario,
// subject, the params, events, seconds, ops_per_s, p50_us and p99_us (when
// HasLatency), and error (when Err is set; the figures are then omitted).
type Result struct {
	Scenario string
	Subject  string
	Params   []Param
	// Events is the number of units (events, records, messages) counted in
	// the measured window; OpsPerS is Events/Seconds.
	Events  int64
	Seconds float64
	OpsPerS float64
	// HasLatency says whether P50us and P99us (per call, microseconds) apply.
	HasLatency bool
	P50us      float64
	P99us      float64
	// HasCPU says whether CPUSeconds, the CPU time the bench process used
	// in the window (see processCPU), applies.
	HasCPU     bool
	CPUSeconds float64
	// Err is why the measurement failed.
	Err string
}

// Param returns the value of the named parameter.
func (r Result) Param(key string) (int64, bool) {
	for _, p := range r.Params {
		if p.Key == key {
			return p.Value, true
		}
	}
	return 0, false
}

// Label names the measurement for humans: "logbook writers=64 batch=1".
func (r Result) Label() string {
	var b strings.Builder
	b.WriteString(r.Subject)
	for _, p := range r.Params {
		if p.Key == "payload_bytes" {
			continue
		}
		fmt.Fprintf(&b, " %s=%d", p.Key, p.Value)
	}
	return b.String()
}

// MarshalJSON writes the fields in a fixed order so lines are easy to read
// and to diff.
func (r Result) MarshalJSON() ([]byte, error) {
	var o object
	o.str("scenario", r.Scenario)
	o.str("subject", r.Subject)
	for _, p := range r.Params {
		o.num(p.Key, float64(p.Value))
	}
	if r.Err != "" {
		o.str("error", r.Err)
		return o.bytes(), nil
	}
	o.num("events", float64(r.Events))
	o.num("seconds", round(r.Seconds, 3))
	o.num("ops_per_s", math.Round(r.OpsPerS))
	if r.HasLatency {
		o.num("p50_us", round(r.P50us, 1))
		o.num("p99_us", round(r.P99us, 1))
	}
	if r.HasCPU && r.Seconds > 0 && r.Events > 0 {
		o.num("cpu_cores", round(r.CPUSeconds/r.Seconds, 2))
		o.num("cpu_us_per_op", round(r.CPUSeconds*1e6/float64(r.Events), 2))
	}
	return o.bytes(), nil
}

// object builds a JSON object with keys in insertion order.
type object struct{ buf bytes.Buffer }

func (o *object) key(k string) {
	if o.buf.Len() == 0 {
		o.buf.WriteByte('{')
	} else {
		o.buf.WriteByte(',')
	}
	kb, _ := json.Marshal(k)
	o.buf.Write(kb)
	o.buf.WriteByte(':')
}

func (o *object) str(k, v string) {
	o.key(k)
	vb, _ := json.Marshal(v)
	o.buf.Write(vb)
}

func (o *object) num(k string, v float64) {
	o.key(k)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		o.buf.WriteString("null")
		return
	}
	o.buf.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
}

func (o *object) bytes() []byte {
	if o.buf.Len() == 0 {
		return []byte("{}")
	}
	o.buf.WriteByte('}')
	return o.buf.Bytes()
}

func round(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}

// reporter prints results: JSON lines on out, tables on human.
type reporter struct {
	out, human io.Writer
}

func newReporter(out, human io.Writer) *reporter { return &reporter{out: out, human: human} }

func (rp *reporter) Results(scenario string, results []Result) {
	if len(results) == 0 {
		return
	}
	width := len("subject")
	for _, r := range results {
		width = max(width, len(r.Label()))
	}
	fmt.Fprintf(rp.human, "\n%s results\n", scenario)
	fmt.Fprintf(rp.human, "%-*s %10s %8s %12s %9s %9s\n", width, "subject", "events", "seconds", "ops/s", "p50 µs", "p99 µs")
	var failures []Result
	for _, r := range results {
		if r.Err != "" {
			fmt.Fprintf(rp.human, "%-*s %10s %8s %12s\n", width, r.Label(), "-", "-", "FAILED")
			failures = append(failures, r)
			continue
		}
		p50, p99 := "-", "-"
		if r.HasLatency {
			p50, p99 = fmtFloat(r.P50us), fmtFloat(r.P99us)
		}
		fmt.Fprintf(rp.human, "%-*s %10d %8.2f %12s %9s %9s\n", width, r.Label(), r.Events, r.Seconds, fmtInt(r.OpsPerS), p50, p99)
	}
	for _, r := range failures {
		fmt.Fprintf(rp.human, "FAILED %s: %s\n", r.Label(), oneLine(r.Err, 300))
	}
	for _, r := range results {
		line, _ := r.MarshalJSON()
		fmt.Fprintf(rp.out, "%s\n", line)
	}
}

func (rp *reporter) Targets(scenario string, outcomes []TargetOutcome) {
	if len(outcomes) == 0 {
		return
	}
	fmt.Fprintf(rp.human, "\n%s targets (ratio = measured / reference; pass when ratio >= factor)\n", scenario)
	tw := tabwriter.NewWriter(rp.human, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tmeasured\tops/s\treference\tops/s\tratio\tneed\tstatus")
	for _, o := range outcomes {
		ratio, mops, rops := "-", "-", "-"
		if o.Measured > 0 {
			mops = fmtInt(o.Measured)
		}
		if o.Reference > 0 {
			rops = fmtInt(o.Reference)
		}
		if o.Status != statusMissing {
			ratio = fmt.Sprintf("%.2f", o.Ratio)
		}
		status := strings.ToUpper(o.Status)
		if o.Status == statusMissing {
			status += " (" + o.Why + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t>= %g\t%s\n", o.Name, o.MeasuredLabel, mops, o.ReferenceLabel, rops, ratio, o.Factor, status)
	}
	tw.Flush()
	for _, o := range outcomes {
		line, _ := o.MarshalJSON()
		fmt.Fprintf(rp.out, "%s\n", line)
	}
}

func fmtInt(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtFloat(v float64) string {
	if v >= 100 {
		return fmtInt(v)
	}
	return strconv.FormatFloat(round(v, 1), 'f', -1, 64)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
