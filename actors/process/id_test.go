package process_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/logbook-fleet/logbook/actors/process"
	"github.com/logbook-fleet/logbook/events"
)

func TestStreamName(t *testing.T) {
	got, err := process.StreamName("ship1", "syslogforwarding", "nginx")
	if err != nil || got != "process-ship1.syslogforwarding.nginx" {
		t.Fatalf("StreamName = %q, %v", got, err)
	}
	u, m, d, err := process.ParseStreamName(got)
	if err != nil || u != "ship1" || m != "syslogforwarding" || d != "nginx" {
		t.Fatalf("ParseStreamName = %q %q %q %v", u, m, d, err)
	}
	bad := [][3]string{
		{"", "m", "d"}, {"u", "", "d"}, {"u", "m", ""},
		{"u.x", "m", "d"}, {"u", "m.x", "d"}, {"u", "m", "d.x"},
		{"u", "m*", "d"}, {"u", "m", ">"}, {"u u", "m", "d"}, {"$SYS", "m", "d"},
		{strings.Repeat("u", 65), "m", "d"},
	}
	for _, p := range bad {
		if _, err := process.StreamName(p[0], p[1], p[2]); !errors.Is(err, process.ErrInvalidID) {
			t.Errorf("StreamName%q = %v, want ErrInvalidID", p, err)
		}
	}
}

func TestParseStreamName(t *testing.T) {
	for _, s := range []string{
		"", "process-", "unit-ship1", "process-ship1", "process-ship1.m", "process-a.b.c.d",
		"process-a..c", "process-.b.c", "process-a.b.", "Process-a.b.c", "process-a b.c.d",
	} {
		if _, _, _, err := process.ParseStreamName(s); !errors.Is(err, process.ErrInvalidID) {
			t.Errorf("ParseStreamName(%q) = %v, want ErrInvalidID", s, err)
		}
	}
}

func FuzzParseStreamName(f *testing.F) {
	for _, s := range []string{"process-ship1.syslogforwarding.nginx", "process-a.b.c.d", "process-", "process-a..b", "unit-x", "process-船.m.d", "process-a.*.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream string) {
		u, m, d, err := process.ParseStreamName(stream)
		if err != nil {
			if !errors.Is(err, process.ErrInvalidID) {
				t.Fatalf("ParseStreamName(%q) = %v, does not wrap ErrInvalidID", stream, err)
			}
			return
		}
		// Round trip, and a name every store accepts.
		back, err := process.StreamName(u, m, d)
		if err != nil || back != stream {
			t.Fatalf("StreamName(%q, %q, %q) = %q, %v; want %q", u, m, d, back, err, stream)
		}
		if err := events.ValidateStream(stream); err != nil {
			t.Fatalf("ParseStreamName accepted %q but the store would not: %v", stream, err)
		}
		if cat, id, _ := events.SplitStream(stream); cat != process.Category || id != u+"."+m+"."+d {
			t.Fatalf("SplitStream(%q) = %q, %q", stream, cat, id)
		}
	})
}
