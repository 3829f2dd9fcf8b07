package ingest

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestDecodeLine(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		line   string
		sensor string
		value  float64
		time   time.Time
		fast   bool // decodeFast handles it
	}{
		{`{"sensor":"temp","value":21.5,"timestamp":"2026-11-22T10:00:00Z"}`, "temp", 21.5, at, true},
		{` { "timestamp" : "2026-11-22T11:00:00+01:00" , "value" : -3 , "sensor" : "t" } `, "t", -3, at, true},
		{`{"sensor":"temp","value":1e3,"timestamp":"2026-11-22T10:00:00.123456789Z"}`, "temp", 1000, at.Add(123456789), true},
		{`{"sensor":"temp","value":0.1,"timestamp":"2026-11-22T09:30:00.5-00:30"}`, "temp", 0.1, at.Add(500 * time.Millisecond), true},
		{`{"sensor":"temp","value":2,"timestamp":1795341600}`, "temp", 2, at, true},
		{`{"sensor":"temp","value":2,"timestamp":1795341600000}`, "temp", 2, at, true},
		{`{"sensor":"temp","value":12345678901234567890,"timestamp":0}`, "temp", 12345678901234567890, time.Unix(0, 0), true},
		{`{"sensor":"temp","value":-0,"timestamp":"1970-01-01T00:00:00Z"}`, "temp", math.Copysign(0, -1), time.Unix(0, 0), true},
		{"{\"sensor\":\"temp\",\"value\":1,\"timestamp\":1795341600}\r", "temp", 1, at, true},
		// The slow path: encoding/json's semantics.
		{`{"Sensor":"temp","VALUE":1,"timestamp":1795341600}`, "temp", 1, at, false},
		{`{"sensor":"temp","value":1,"timestamp":1795341600,"extra":[1,{"a":null}]}`, "temp", 1, at, false},
		{`{"sensor":"x","sensor":"temp","value":1,"timestamp":1795341600}`, "temp", 1, at, false},
		{`{"sensor":"t\u00e9mp","value":1,"timestamp":1795341600}`, "tém" + "p", 1, at, false},
		{`{"sensor":"température","value":1,"timestamp":1795341600}`, "température", 1, at, false},
		{`{"sensor":"temp","value":1,"timestamp":"2026-11-22T10:00:00.1234567891Z"}`, "temp", 1, at.Add(123456789), false},
		{`{"sensor":"temp","value":1e-400,"timestamp":1795341600}`, "temp", 0, at, true},
	} {
		r, err := decodeLine([]byte(tc.line))
		if err != nil {
			t.Errorf("decodeLine(%s): %v", tc.line, err)
			continue
		}
		if string(r.sensor) != tc.sensor || math.Float64bits(r.value) != math.Float64bits(tc.value) || r.nanos != tc.time.UnixNano() {
			t.Errorf("decodeLine(%s) = %q %v %v, want %q %v %v", tc.line, r.sensor, r.value, time.Unix(0, r.nanos).UTC(), tc.sensor, tc.value, tc.time)
		}
		if _, ok := decodeFast([]byte(tc.line)); ok != tc.fast {
			t.Errorf("decodeFast(%s) handled = %v, want %v", tc.line, ok, tc.fast)
		}
	}
}

func TestDecodeLineErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{"sensor":"temp","value":21.5`, "not valid JSON"},
		{`not json`, "not valid JSON"},
		{`[1,2]`, "want a JSON object"},
		{`"temp"`, "want a JSON object"},
		{`null`, "want a JSON object"},
		{`{"value":1,"timestamp":1}`, `missing "sensor"`},
		{`{"sensor":"a","timestamp":1}`, `missing "value"`},
		{`{"sensor":"a","value":1}`, `missing "timestamp"`},
		{`{"sensor":"","value":1,"timestamp":1}`, `"sensor" is empty`},
		{`{"sensor":1,"value":1,"timestamp":1}`, `"sensor" must be a string, got a number`},
		{`{"sensor":"a\u0001","value":1,"timestamp":1}`, `control character`},
		{`{"sensor":"` + strings.Repeat("s", MaxSensorLen+1) + `","value":1,"timestamp":1}`, `at most 128 allowed`},
		{`{"sensor":"a","value":"21.5","timestamp":1}`, `"value" must be a number, got a string`},
		{`{"sensor":"a","value":null,"timestamp":1}`, `"value" must be a number, got null`},
		{`{"sensor":"a","value":1e400,"timestamp":1}`, `does not fit a 64-bit float`},
		{`{"sensor":"a","value":1,"timestamp":"yesterday"}`, `is not RFC 3339`},
		{`{"sensor":"a","value":1,"timestamp":"2026-02-30T10:00:00Z"}`, `is not RFC 3339`},
		{`{"sensor":"a","value":1,"timestamp":"1969-12-31T23:59:59Z"}`, `is before 1970-01-01T00:00:00Z`},
		{`{"sensor":"a","value":1,"timestamp":"2263-01-01T00:00:00Z"}`, `is after 2262`},
		{`{"sensor":"a","value":1,"timestamp":-1}`, `is before 1970`},
		{`{"sensor":"a","value":1,"timestamp":1.5}`, `whole number of Unix seconds or milliseconds`},
		{`{"sensor":"a","value":1,"timestamp":99999999999999999}`, `is after 2262`},
		{`{"sensor":"a","value":1,"timestamp":true}`, `got a boolean`},
		{`{"sensor":"a","value":1,"timestamp":1} x`, "not valid JSON"},
	} {
		_, err := decodeLine([]byte(tc.line))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decodeLine(%.60s) = %v, want an error containing %q", tc.line, err, tc.want)
		}
	}
}

func TestDecodeFastDoesNotAllocate(t *testing.T) {
	line := []byte(`{"sensor":"temp","value":21.5,"timestamp":"2026-11-22T10:00:00.25+01:00"}`)
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := decodeFast(line); !ok {
			t.Fatal("not on the fast path")
		}
	}); n != 0 {
		t.Errorf("decodeFast allocates %v times per line, want 0", n)
	}
}

// FuzzDecodeLine checks that the fast path agrees with the reference
// semantics (encoding/json plus the checks of decodeSlow) on every line it
// handles, and that no input panics either decoder.
func FuzzDecodeLine(f *testing.F) {
	for _, s := range []string{
		`{"sensor":"temp","value":21.5,"timestamp":"2026-11-22T10:00:00Z"}`,
		`{"timestamp":1795341600123,"value":-1.5e-7,"sensor":"a b"}`,
		`{"sensor":"x","value":0.30000000000000004,"timestamp":"2000-02-29T23:59:59.999999999-23:59"}`,
		`{"sensor":"x","value":9007199254740993,"timestamp":"2000-02-29T23:59:59+24:00"}`,
		`{"sensor":"x","value":1E22,"timestamp":"2262-04-11T23:47:16.854775807Z"}`,
		`{"sensor":"x","value":123456789012345678901234567890,"timestamp":9223372036}`,
		`{"sensor":"x","value":1,"timestamp":"2262-04-11T23:47:16.854775808Z"}`,
		`{"Sensor":"x","value":1,"timestamp":1}`,
		`{"sensor":"x","value":01,"timestamp":1}`,
		`{"sensor":"x","value":1.,"timestamp":1}`,
		`{"sensor":"x","value":1,"timestamp":1,}`,
		`{"sensor":"\u0041","value":1,"timestamp":1}`,
		"{\"sensor\":\"\xff\",\"value\":1,\"timestamp\":1}",
		` {}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		slow, slowErr := decodeSlow(line)
		fast, ok := decodeFast(line)
		if !bytes.Equal(line, orig) {
			t.Fatalf("a decoder modified its input")
		}
		if ok {
			if slowErr != nil {
				t.Fatalf("fast path accepts %q, reference rejects it: %v", line, slowErr)
			}
			if !bytes.Equal(fast.sensor, slow.sensor) || math.Float64bits(fast.value) != math.Float64bits(slow.value) || fast.nanos != slow.nanos {
				t.Fatalf("%q: fast path = %q %v %d, reference = %q %v %d", line, fast.sensor, fast.value, fast.nanos, slow.sensor, slow.value, slow.nanos)
			}
		}
		if slowErr == nil {
			if err := validateSensor(string(slow.sensor)); err != nil {
				t.Fatalf("%q: reference accepted an invalid sensor: %v", line, err)
			}
			if slow.nanos < 0 || math.IsNaN(slow.value) || math.IsInf(slow.value, 0) {
				t.Fatalf("%q: reference accepted %v at %d", line, slow.value, slow.nanos)
			}
		}
	})
}
