package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// labelChanges is what `unit label` asks for: labels to set and keys to
// remove.
type labelChanges struct {
	Set    map[string]string
	Remove []string
}

// parseLabelChanges parses kubectl's label syntax: "key=value" sets a label
// (the value may be empty), "key-" removes one. A key may not be both set
// and removed, nor set twice to different values. Keys and values must be
// printable text without spaces around the key; the server checks the
// rest of its rules.
func parseLabelChanges(args []string) (labelChanges, error) {
	ch := labelChanges{Set: map[string]string{}}
	removed := map[string]bool{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			if err := checkKey(k, a); err != nil {
				return ch, err
			}
			if err := checkValue(v, a); err != nil {
				return ch, err
			}
			if old, dup := ch.Set[k]; dup && old != v {
				return ch, fmt.Errorf("label %q is given twice (%q and %q)", k, old, v)
			}
			ch.Set[k] = v
			continue
		}
		k, ok := strings.CutSuffix(a, "-")
		if !ok {
			return ch, fmt.Errorf("%q: want key=value to set a label or key- to remove it", a)
		}
		if err := checkKey(k, a); err != nil {
			return ch, err
		}
		if !removed[k] {
			removed[k] = true
			ch.Remove = append(ch.Remove, k)
		}
	}
	for _, k := range ch.Remove {
		if _, ok := ch.Set[k]; ok {
			return ch, fmt.Errorf("label %q is both set and removed", k)
		}
	}
	slices.Sort(ch.Remove)
	return ch, nil
}

// parseKeyValues parses "key=value" pairs (a --label, --config or --repo
// flag) into a map. what names the flag in errors.
func parseKeyValues(what string, pairs []string) (map[string]string, error) {
	m := make(map[string]string, len(pairs))
	for _, a := range pairs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("%s %q: want key=value", what, a)
		}
		if err := checkKey(k, a); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if err := checkValue(v, a); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if old, dup := m[k]; dup && old != v {
			return nil, fmt.Errorf("%s %q is given twice (%q and %q)", what, k, old, v)
		}
		m[k] = v
	}
	return m, nil
}

func checkKey(k, arg string) error {
	switch {
	case k == "":
		return fmt.Errorf("%q: empty key", arg)
	case !utf8.ValidString(k):
		return fmt.Errorf("%q: key is not valid UTF-8", arg)
	case strings.ContainsFunc(k, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return fmt.Errorf("%q: key contains a space or a control character", arg)
	}
	return nil
}

func checkValue(v, arg string) error {
	switch {
	case !utf8.ValidString(v):
		return fmt.Errorf("%q: value is not valid UTF-8", arg)
	case strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }):
		return fmt.Errorf("%q: value contains a control character", arg)
	}
	return nil
}

// errNoPoint is returned by parsePoint for an empty string.
var errNoPoint = errors.New("empty time or position")

// parsePoint parses a point in the log's history for audit:
//
//   - a bare decimal integer is a log position: "1207";
//   - "now";
//   - an RFC 3339 time: "2026-11-22T10:00:00Z", "2026-11-22T10:00:00+01:00";
//   - a local date and time: "2026-11-22 10:00", "2026-11-22T10:00:05",
//     "2026-11-22" (midnight);
//   - a time relative to now, always in the past: "-2h", "2h ago", "90m",
//     "1d12h ago" (units ns, us, ms, s, m, h and d for 24 hours).
//
// Local forms use loc.
func parsePoint(s string, now time.Time, loc *time.Location) (*logbookv1.AuditPoint, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errNoPoint
	}
	if s[0] >= '0' && s[0] <= '9' && strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
		pos, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("position %q: %w", s, err)
		}
		if pos == 0 {
			return nil, errors.New("position 0: positions start at 1")
		}
		return &logbookv1.AuditPoint{At: &logbookv1.AuditPoint_Position{Position: pos}}, nil
	}
	t, err := parseTime(s, now, loc)
	if err != nil {
		return nil, err
	}
	return &logbookv1.AuditPoint{At: &logbookv1.AuditPoint_Time{Time: timestamppb.New(t)}}, nil
}

// parseTime parses the time forms of parsePoint (not positions), between
// the years 1 and 9999 (what a protobuf Timestamp holds).
func parseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	t, err := parseAnyTime(s, now, loc)
	if err != nil {
		return t, err
	}
	if err := timestamppb.New(t).CheckValid(); err != nil {
		return time.Time{}, fmt.Errorf("%q is out of range (years 1 to 9999)", s)
	}
	return t, nil
}

func parseAnyTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errNoPoint
	}
	if strings.EqualFold(s, "now") {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	rel := s
	if r, ok := strings.CutSuffix(rel, " ago"); ok {
		rel = strings.TrimSpace(r)
	} else if r, ok := strings.CutPrefix(rel, "-"); ok {
		rel = r
	}
	d, err := parseDuration(rel)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a time: want RFC 3339 (2026-11-22T10:00:00Z), a date (2026-11-22), \"now\" or an age like -2h or \"2h ago\"", s)
	}
	return now.Add(-d), nil
}

// parseDuration is time.ParseDuration plus a "d" unit of 24 hours ("1d12h"),
// for non-negative durations only.
func parseDuration(s string) (time.Duration, error) {
	if s == "" || s[0] == '-' || s[0] == '+' {
		return 0, fmt.Errorf("duration %q: want a positive duration like 90s, 2h or 1d", s)
	}
	var total time.Duration
	rest := s
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		days, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("duration %q: bad day count", s)
		}
		if days > 100*365 {
			return 0, fmt.Errorf("duration %q: too long", s)
		}
		total = time.Duration(days) * 24 * time.Hour
		rest = rest[i+1:]
		if rest == "" {
			return total, nil
		}
		if rest[0] == '-' || rest[0] == '+' {
			return 0, fmt.Errorf("duration %q: want a positive duration", s)
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	if d < 0 || total+d < total {
		return 0, fmt.Errorf("duration %q: out of range", s)
	}
	return total + d, nil
}

// pointText renders an audit point as the user would type it.
func pointText(p *logbookv1.AuditPoint) string {
	switch at := p.GetAt().(type) {
	case *logbookv1.AuditPoint_Position:
		return "position " + strconv.FormatUint(at.Position, 10)
	case *logbookv1.AuditPoint_Time:
		return at.Time.AsTime().UTC().Format(time.RFC3339)
	}
	return "now"
}

// parseProcessDesired parses --desired.
func parseProcessDesired(s string) (logbookv1.ProcessDesiredStatus, error) {
	switch strings.ToLower(s) {
	case "running", "run", "start", "started":
		return logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_RUNNING, nil
	case "stopped", "stop":
		return logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_STOPPED, nil
	}
	return 0, fmt.Errorf("--desired %q: want running or stopped", s)
}

// parseRestartPolicy parses --restart.
func parseRestartPolicy(s string) (logbookv1.ProcessRestartPolicy, error) {
	switch strings.ToLower(strings.ReplaceAll(s, "_", "-")) {
	case "always":
		return logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_ALWAYS, nil
	case "on-failure":
		return logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_ON_FAILURE, nil
	case "never", "no":
		return logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_NEVER, nil
	}
	return 0, fmt.Errorf("--restart %q: want always, on-failure or never", s)
}

// seconds converts a --ttl or --timeout to whole seconds for the API,
// rounding up; 0 stays 0 (the server's default).
func seconds(flag string, d time.Duration) (uint32, error) {
	if d < 0 {
		return 0, fmt.Errorf("%s %v: must not be negative", flag, d)
	}
	s := (d + time.Second - 1) / time.Second
	if s > 1<<32-1 {
		return 0, fmt.Errorf("%s %v: too long", flag, d)
	}
	return uint32(s), nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// durationFlag is a time.Duration flag that also takes days ("30d",
// "1d12h"); see parseDuration.
type durationFlag time.Duration

func (d *durationFlag) String() string {
	if *d == 0 {
		return "0"
	}
	return time.Duration(*d).String()
}

func (d *durationFlag) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationFlag(v)
	return nil
}

func (d *durationFlag) Type() string { return "duration" }
