package main

import "strings"

// Target is a ratio a scenario is judged by: the measurement selected by
// Measured must reach Factor times the reference, which is either the
// measurement selected by Reference (same run) or the constant Constant
// (ops/s). It passes when measured >= Factor * reference.
type Target struct {
	Name      string
	Measured  Selector
	Reference Selector
	Constant  float64
	Factor    float64
}

// Selector picks the one measurement of a subject whose params include all
// of Params.
type Selector struct {
	Subject string
	Params  []Param
}

func (s Selector) String() string {
	r := Result{Subject: s.Subject, Params: s.Params}
	return r.Label()
}

func (s Selector) find(results []Result) (Result, string) {
	for _, r := range results {
		if r.Subject != s.Subject {
			continue
		}
		match := true
		for _, p := range s.Params {
			if v, ok := r.Param(p.Key); !ok || v != p.Value {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		if r.Err != "" {
			return r, "failed"
		}
		return r, ""
	}
	return Result{}, "not measured"
}

const (
	statusPass    = "pass"
	statusFail    = "fail"
	statusMissing = "missing"
)

// TargetOutcome is a Target evaluated on one run's results. Its JSON form
// is {"scenario", "subject":"target", "target", "measured",
// "measured_ops_per_s", "reference", "reference_ops_per_s", "factor",
// "ratio", "status", "why"}; figures that could not be found are omitted,
// and "why" is there only when status is "missing".
type TargetOutcome struct {
	Scenario       string
	Name           string
	MeasuredLabel  string
	Measured       float64
	ReferenceLabel string
	Reference      float64
	Factor         float64
	Ratio          float64
	Status         string
	Why            string
}

func evaluateTargets(scenario string, targets []Target, results []Result) []TargetOutcome {
	var out []TargetOutcome
	for _, t := range targets {
		o := TargetOutcome{
			Scenario:      scenario,
			Name:          t.Name,
			MeasuredLabel: t.Measured.String(),
			Factor:        t.Factor,
		}
		var why []string
		m, mwhy := t.Measured.find(results)
		if mwhy != "" {
			why = append(why, o.MeasuredLabel+" "+mwhy)
		} else {
			o.Measured = m.OpsPerS
		}
		if t.Reference.Subject != "" {
			o.ReferenceLabel = t.Reference.String()
			r, rwhy := t.Reference.find(results)
			if rwhy != "" {
				why = append(why, o.ReferenceLabel+" "+rwhy)
			} else {
				o.Reference = r.OpsPerS
			}
		} else {
			o.ReferenceLabel = fmtInt(t.Constant) + "/s"
			o.Reference = t.Constant
		}
		switch {
		case len(why) > 0:
			o.Status, o.Why = statusMissing, strings.Join(why, "; ")
		case o.Reference <= 0:
			o.Status, o.Why = statusMissing, "reference is zero"
		default:
			o.Ratio = o.Measured / o.Reference
			o.Status = statusFail
			if o.Ratio >= t.Factor {
				o.Status = statusPass
			}
		}
		out = append(out, o)
	}
	return out
}

func (o TargetOutcome) MarshalJSON() ([]byte, error) {
	var j object
	j.str("scenario", o.Scenario)
	j.str("subject", "target")
	j.str("target", o.Name)
	j.str("measured", o.MeasuredLabel)
	if o.Measured > 0 {
		j.num("measured_ops_per_s", round(o.Measured, 0))
	}
	j.str("reference", o.ReferenceLabel)
	if o.Reference > 0 {
		j.num("reference_ops_per_s", round(o.Reference, 0))
	}
	j.num("factor", o.Factor)
	if o.Status != statusMissing {
		j.num("ratio", round(o.Ratio, 3))
	}
	j.str("status", o.Status)
	if o.Why != "" {
		j.str("why", o.Why)
	}
	return j.bytes(), nil
}
