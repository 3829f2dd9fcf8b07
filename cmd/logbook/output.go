package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Output formats (-o).
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// display writes a command's results in the chosen format and keeps the
// first write error. Tables and messages go to out; progress and notes go to
// diag, so that out stays machine-readable with -o json|yaml.
type display struct {
	format string
	out    io.Writer
	diag   io.Writer
	now    time.Time
	err    error
	// docs counts YAML documents written, to separate them with "---".
	docs int
}

func (a *app) display(cmd *cobra.Command) (*display, error) {
	switch a.output {
	case formatTable, formatJSON, formatYAML:
	case "":
		a.output = formatTable
	default:
		return nil, usageErrorf(cmd, "-o %q: want table, json or yaml", a.output)
	}
	return &display{format: a.output, out: cmd.OutOrStdout(), diag: cmd.ErrOrStderr(), now: a.now()}, nil
}

func (p *display) table() bool { return p.format == formatTable }

func (p *display) write(b []byte) {
	if p.err == nil {
		_, p.err = p.out.Write(b)
	}
}

// f writes formatted text to out.
func (p *display) f(format string, args ...any) { p.write(fmt.Appendf(nil, format, args...)) }

// note writes a line to diag: a hint or a warning around the results.
func (p *display) note(format string, args ...any) {
	fmt.Fprintf(p.diag, format+"\n", args...)
}

// protoJSON renders m as compact protobuf JSON (field names in lowerCamelCase,
// unset fields left out).
func protoJSON(m proto.Message) ([]byte, error) {
	return protojson.MarshalOptions{}.Marshal(m)
}

// message writes m as one JSON or YAML document.
func (p *display) message(m proto.Message) {
	b, err := protoJSON(m)
	if err != nil {
		p.err = cmpErr(p.err, err)
		return
	}
	p.rawJSON(b)
}

// value writes v (a value for encoding/json) as one JSON or YAML document.
func (p *display) value(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		p.err = cmpErr(p.err, err)
		return
	}
	p.rawJSON(b)
}

// rawJSON writes the JSON document b indented (json) or as YAML (yaml and
// table).
func (p *display) rawJSON(b []byte) {
	switch p.format {
	case formatJSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			p.err = cmpErr(p.err, err)
			return
		}
		buf.WriteByte('\n')
		p.write(buf.Bytes())
	default:
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			p.err = cmpErr(p.err, err)
			return
		}
		if p.docs > 0 {
			p.write([]byte("---\n"))
		}
		p.docs++
		p.write(y)
	}
}

// streamed writes one element of a stream: a compact JSON line (json), a
// YAML document (yaml). Tables print streams themselves.
func (p *display) streamed(v any) {
	var b []byte
	var err error
	if m, ok := v.(proto.Message); ok {
		b, err = protoJSON(m)
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		p.err = cmpErr(p.err, err)
		return
	}
	if p.format == formatJSON {
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			p.err = cmpErr(p.err, err)
			return
		}
		buf.WriteByte('\n')
		p.write(buf.Bytes())
		return
	}
	p.rawJSON(b)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// rows writes an aligned table: a header line in capitals, then one line
// per row. Empty cells print as "-" (kubectl's <none>).
func (p *display) rows(header []string, rows [][]string) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	p.write(buf.Bytes())
}

// cell makes s fit one table cell: "-" when empty, control characters
// escaped (a tab or newline would break the columns).
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		q := strconv.Quote(s)
		return q[1 : len(q)-1]
	}
	return s
}

// fields writes "Key:  value" lines aligned (a describe view).
func (p *display) fields(kv [][2]string) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	for _, f := range kv {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], cell(f[1]))
	}
	tw.Flush()
	p.write(buf.Bytes())
}

// ago renders t relative to now: "just now", "3m ago", "2h ago", "4d ago",
// or "in 5m" for a time ahead; "" for an unset time.
func ago(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return ""
	}
	d := now.Sub(t.AsTime())
	if d < 0 {
		return "in " + shortDuration(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return shortDuration(d) + " ago"
}

// shortDuration renders d in its largest unit and the next one, like kubectl's
// AGE column: 45s, 3m, 3m20s, 2h, 2h5m, 4d, 4d3h, 400d.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < 10*time.Minute:
		m, s := int(d/time.Minute), int(d%time.Minute/time.Second)
		if s == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, s)
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 || h >= 8 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 || days >= 8 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}

// stamp renders t as RFC 3339 in UTC with its age: "2026-11-22T10:04:05Z
// (3m ago)"; "" for an unset time.
func stamp(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return ""
	}
	return fmt.Sprintf("%s (%s)", t.AsTime().UTC().Format(time.RFC3339), ago(t, now))
}

// enumText renders an enum value without its type prefix, in lower case:
// UNIT_STATUS_ACTIVE is "active", PROCESS_RESTART_POLICY_ON_FAILURE is
// "on-failure"; the zero value (UNSPECIFIED) is "".
func enumText(e protoreflect.Enum) string {
	if e.Number() == 0 {
		return ""
	}
	d := e.Descriptor()
	v := d.Values().ByNumber(e.Number())
	if v == nil {
		return strconv.Itoa(int(e.Number()))
	}
	prefix := upperSnake(string(d.Name())) + "_"
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(string(v.Name()), prefix)), "_", "-")
}

// upperSnake turns "ProcessRestartPolicy" into "PROCESS_RESTART_POLICY".
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// labelsText renders labels as "k1=v1,k2=v2", sorted by key.
func labelsText(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// yesNo renders a bool for a table.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// shortType drops the "logbook.v1." package from an event type.
func shortType(t string) string { return strings.TrimPrefix(t, "logbook.v1.") }

// truncate cuts s to n runes, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// written reports a write: with -o table the line "<what> <verb> (version
// 4, position 1207)", or "<what> unchanged" when it appended nothing; with
// -o json|yaml the response res.
func (p *display) written(res proto.Message, a *logbookv1.Appended, what, verb string) {
	if !p.table() {
		p.message(res)
		return
	}
	if a.GetEvents() == 0 {
		p.f("%s unchanged\n", what)
		return
	}
	p.f("%s %s (version %d, position %d)\n", what, verb, a.GetVersion(), a.GetPosition())
}
