package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxSensorLen is the longest sensor name, in bytes.
const MaxSensorLen = 128

// The range of reading times: what fits int64 nanoseconds since the Unix
// epoch, from the epoch on (the read model's buckets assume times after it).
var (
	minReadingTime = time.Unix(0, 0).UTC()
	maxReadingTime = time.Unix(0, math.MaxInt64).UTC()
)

// unixMillisFrom is the smallest number a numeric timestamp is read as
// milliseconds from: 1e11 seconds is the year 5138, 1e11 ms is 1973-03-03.
const unixMillisFrom = 100_000_000_000

// reading is one decoded line. sensor aliases the line on the fast path
// and is only valid until the next line is read.
type reading struct {
	sensor []byte
	value  float64
	nanos  int64
}

// decodeLine decodes one NDJSON line (without its newline) holding an
// object {"sensor": string, "value": number, "timestamp": string or
// number}. The error says what is wrong with the line, for the client.
//
// The semantics are decodeSlow's: encoding/json's (keys matched
// case-insensitively, unknown keys ignored, the last of repeated keys
// wins) plus the checks of this file. decodeFast handles the common,
// plain shape without allocating and defers to decodeSlow for anything
// else; FuzzDecodeLine checks they agree.
func decodeLine(line []byte) (reading, error) {
	if r, ok := decodeFast(line); ok {
		return r, nil
	}
	return decodeSlow(line)
}

// isBlank reports whether line holds only JSON whitespace.
func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// decodeSlow decodes line with encoding/json and checks its fields. It is
// the reference semantics of decodeLine.
func decodeSlow(line []byte) (reading, error) {
	var obj struct {
		Sensor    json.RawMessage `json:"sensor"`
		Value     json.RawMessage `json:"value"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	err := json.Unmarshal(line, &obj)
	if syn := (*json.SyntaxError)(nil); errors.As(err, &syn) {
		return reading{}, fmt.Errorf("not valid JSON: %v (at byte %d)", syn, syn.Offset)
	}
	if trimmed := bytes.TrimLeft(line, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return reading{}, errors.New(`want a JSON object like {"sensor":"temp","value":21.5,"timestamp":"2026-11-22T10:00:00Z"}`)
	}
	if err != nil {
		return reading{}, fmt.Errorf("not a readings object: %v", err)
	}
	var r reading
	switch {
	case len(obj.Sensor) == 0:
		return r, errors.New(`missing "sensor"`)
	case len(obj.Value) == 0:
		return r, errors.New(`missing "value"`)
	case len(obj.Timestamp) == 0:
		return r, errors.New(`missing "timestamp"`)
	}

	if obj.Sensor[0] != '"' {
		return r, fmt.Errorf(`"sensor" must be a string, got %s`, kindOf(obj.Sensor))
	}
	var sensor string
	if err := json.Unmarshal(obj.Sensor, &sensor); err != nil {
		return r, fmt.Errorf(`"sensor": %v`, err)
	}
	if err := validateSensor(sensor); err != nil {
		return r, err
	}
	r.sensor = []byte(sensor)

	if !isNumberStart(obj.Value[0]) {
		return r, fmt.Errorf(`"value" must be a number, got %s`, kindOf(obj.Value))
	}
	v, perr := strconv.ParseFloat(string(obj.Value), 64)
	if perr != nil {
		return r, fmt.Errorf(`"value" %s does not fit a 64-bit float`, obj.Value)
	}
	r.value = v

	switch ts := obj.Timestamp; {
	case ts[0] == '"':
		var s string
		if err := json.Unmarshal(ts, &s); err != nil {
			return r, fmt.Errorf(`"timestamp": %v`, err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return r, fmt.Errorf(`"timestamp" %q is not RFC 3339 (like "2026-11-22T10:00:00Z" or "2026-11-22T11:00:00.5+01:00")`, s)
		}
		if r.nanos, err = timeNanos(t, ts); err != nil {
			return r, err
		}
	case isNumberStart(ts[0]):
		if r.nanos, err = unixNumberNanos(ts); err != nil {
			return r, err
		}
	default:
		return r, fmt.Errorf(`"timestamp" must be an RFC 3339 string or a number of Unix seconds or milliseconds, got %s`, kindOf(ts))
	}
	return r, nil
}

// validateSensor checks a decoded sensor name.
func validateSensor(s string) error {
	switch {
	case s == "":
		return errors.New(`"sensor" is empty`)
	case len(s) > MaxSensorLen:
		return fmt.Errorf(`"sensor" is %d bytes long, at most %d allowed`, len(s), MaxSensorLen)
	}
	for _, c := range s {
		if unicode.IsControl(c) || c == utf8.RuneError {
			return fmt.Errorf(`"sensor" %q contains control character or invalid UTF-8 %U`, s, c)
		}
	}
	return nil
}

// timeNanos returns t as Unix nanoseconds, or an error naming the
// timestamp as written (raw) when t is outside the stored range.
func timeNanos(t time.Time, raw []byte) (int64, error) {
	switch {
	case t.Before(minReadingTime):
		return 0, fmt.Errorf(`"timestamp" %s is before %s`, raw, minReadingTime.Format(time.RFC3339))
	case t.After(maxReadingTime):
		return 0, fmt.Errorf(`"timestamp" %s is after %s, the latest time Logbook stores`, raw, maxReadingTime.Format(time.RFC3339Nano))
	}
	return t.UnixNano(), nil
}

// unixNumberNanos reads a JSON number literal as a timestamp: a whole
// number of Unix seconds when below 1e11, of milliseconds from 1e11 on.
func unixNumberNanos(lit []byte) (int64, error) {
	if lit[0] == '-' {
		return 0, fmt.Errorf(`"timestamp" %s is before %s`, lit, minReadingTime.Format(time.RFC3339))
	}
	n, ok := parseDigits(lit)
	if !ok {
		return 0, fmt.Errorf(`"timestamp" %s must be a whole number of Unix seconds or milliseconds`, lit)
	}
	var ns uint64
	switch {
	case n < unixMillisFrom && n <= math.MaxInt64/uint64(time.Second):
		ns = n * uint64(time.Second)
	case n >= unixMillisFrom && n <= math.MaxInt64/uint64(time.Millisecond):
		ns = n * uint64(time.Millisecond)
	default:
		return 0, fmt.Errorf(`"timestamp" %s is after %s, the latest time Logbook stores`, lit, maxReadingTime.Format(time.RFC3339Nano))
	}
	return int64(ns), nil
}

// parseDigits parses a literal of 1 to 19 decimal digits.
func parseDigits(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func isNumberStart(c byte) bool { return c == '-' || c >= '0' && c <= '9' }

// kindOf names the JSON kind of a valid JSON value, for errors.
func kindOf(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// decodeFast decodes the plain shape of a line: one object with exactly
// the keys "sensor", "value" and "timestamp", each once, in any order,
// with JSON whitespace anywhere; a sensor of printable ASCII without
// escapes; a value whose number converts exactly on the fast path; a
// timestamp in strict RFC 3339 (at most nine fraction digits) or a whole
// number. ok is false for anything else, valid or not: decodeSlow decides.
func decodeFast(b []byte) (r reading, ok bool) {
	const (
		seenSensor = 1 << iota
		seenValue
		seenTimestamp
		seenAll = seenSensor | seenValue | seenTimestamp
	)
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return r, false
	}
	seen := 0
	for {
		i = skipSpace(b, i+1)
		if i >= len(b) || b[i] != '"' {
			return r, false
		}
		key, end, ok := plainString(b, i)
		if !ok {
			return r, false
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return r, false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return r, false
		}
		switch string(key) {
		case "sensor":
			if seen&seenSensor != 0 || b[i] != '"' {
				return r, false
			}
			s, end, ok := plainString(b, i)
			if !ok || len(s) == 0 || len(s) > MaxSensorLen {
				return r, false
			}
			r.sensor, i, seen = s, end, seen|seenSensor
		case "value":
			lit, end, ok := numberLiteral(b, i)
			if seen&seenValue != 0 || !ok {
				return r, false
			}
			if r.value, ok = fastFloat(lit); !ok {
				return r, false
			}
			i, seen = end, seen|seenValue
		case "timestamp":
			if seen&seenTimestamp != 0 {
				return r, false
			}
			if b[i] == '"' {
				s, end, ok := plainString(b, i)
				if !ok {
					return r, false
				}
				t, ok := fastRFC3339(s)
				if !ok || t.Before(minReadingTime) || t.After(maxReadingTime) {
					return r, false
				}
				r.nanos, i = t.UnixNano(), end
			} else {
				lit, end, ok := numberLiteral(b, i)
				if !ok {
					return r, false
				}
				ns, err := unixNumberNanos(lit)
				if err != nil {
					return r, false
				}
				r.nanos, i = ns, end
			}
			seen |= seenTimestamp
		default:
			return r, false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return r, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return r, false
		}
	}
	if seen != seenAll || skipSpace(b, i+1) != len(b) {
		return r, false
	}
	return r, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// plainString returns the content of the string starting at b[i] == '"'
// and the index after its closing quote, if it holds only printable ASCII
// other than '\\' (no escapes, nothing encoding/json would rewrite).
func plainString(b []byte, i int) (s []byte, end int, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// numberLiteral returns the JSON number starting at b[i] and the index
// after it, following JSON's grammar exactly:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberLiteral(b []byte, i int) (lit []byte, end int, ok bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		j = digits(b, j)
	default:
		return nil, 0, false
	}
	if j < len(b) && b[j] == '.' {
		k := digits(b, j+1)
		if k == j+1 {
			return nil, 0, false
		}
		j = k
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := digits(b, j)
		if k == j {
			return nil, 0, false
		}
		j = k
	}
	return b[i:j], j, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// pow10 holds the powers of ten float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// fastFloat converts a valid JSON number literal exactly when its
// significant digits fit in 53 bits and its decimal exponent in ±22 (one
// correctly rounded multiplication or division of exact operands, the
// fast path of strconv.ParseFloat), and otherwise through
// strconv.ParseFloat. ok is false when the value does not fit a float64.
func fastFloat(lit []byte) (float64, bool) {
	neg := lit[0] == '-'
	j := 0
	if neg {
		j = 1
	}
	var man uint64
	sig, exp := 0, 0
	for ; j < len(lit) && lit[j] >= '0' && lit[j] <= '9'; j++ {
		if man == 0 && lit[j] == '0' {
			continue
		}
		man, sig = man*10+uint64(lit[j]-'0'), sig+1
		if sig > 19 {
			return slowFloat(lit)
		}
	}
	if j < len(lit) && lit[j] == '.' {
		for j++; j < len(lit) && lit[j] >= '0' && lit[j] <= '9'; j++ {
			exp--
			if man == 0 && lit[j] == '0' {
				continue
			}
			man, sig = man*10+uint64(lit[j]-'0'), sig+1
			if sig > 19 {
				return slowFloat(lit)
			}
		}
	}
	if j < len(lit) { // exponent
		j++
		eneg := lit[j] == '-'
		if lit[j] == '+' || lit[j] == '-' {
			j++
		}
		if len(lit)-j > 4 {
			return slowFloat(lit)
		}
		e := 0
		for ; j < len(lit); j++ {
			e = e*10 + int(lit[j]-'0')
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	var f float64
	switch {
	case man == 0:
		f = 0
	case man >= 1<<53 || exp < -22 || exp > 22:
		return slowFloat(lit)
	case exp >= 0:
		f = float64(man) * pow10[exp]
	default:
		f = float64(man) / pow10[-exp]
	}
	if neg {
		f = -f
	}
	return f, true
}

func slowFloat(lit []byte) (float64, bool) {
	f, err := strconv.ParseFloat(string(lit), 64)
	return f, err == nil
}

// fastRFC3339 parses the strict form "YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|±HH:MM)"
// with the range checks of time.Parse; ok is false for anything else.
func fastRFC3339(s []byte) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(b []byte) (int, bool) {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	hour, ok4 := num(s[11:13])
	minute, ok5 := num(s[14:16])
	sec, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := s[19:]
	nsec := 0
	if len(rest) >= 2 && rest[0] == '.' {
		n := digits(rest, 1)
		if n == 1 || n > 10 {
			return time.Time{}, false
		}
		frac, _ := num(rest[1:n])
		for k := n; k < 10; k++ {
			frac *= 10
		}
		nsec, rest = frac, rest[n:]
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
		return t, true
	case len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		hh, ok1 := num(rest[1:3])
		mm, ok2 := num(rest[4:6])
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return time.Time{}, false
		}
		off := time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute
		if rest[0] == '+' {
			off = -off
		}
		return t.Add(off), true
	}
	return time.Time{}, false
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
