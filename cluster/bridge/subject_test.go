package bridge

import (
	"errors"
	"strings"
	"testing"

	"github.com/logbook-fleet/logbook/actors/unit"
)

func TestParseSubject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Subject
		ok   bool
	}{
		{"ship1.event.syslogforwarding.nginx", Subject{"ship1", KindEvent, "syslogforwarding", "nginx"}, true},
		{"ship2.command.shellcommand.operatingsystem", Subject{"ship2", KindCommand, "shellcommand", "operatingsystem"}, true},
		{"Ship-2_x.event.M.D", Subject{"Ship-2_x", KindEvent, "M", "D"}, true},
		{"skib.event.måling.dæk", Subject{"skib", KindEvent, "måling", "dæk"}, true},
		{"", Subject{}, false},
		{"ship1", Subject{}, false},
		{"ship1.event.a", Subject{}, false},
		{"ship1.event.a.b.c", Subject{}, false},
		{".event.a.b", Subject{}, false},
		{"ship1..a.b", Subject{}, false},
		{"ship1.event..b", Subject{}, false},
		{"ship1.event.a.", Subject{}, false},
		{"ship1.reply.a.b", Subject{}, false},
		{"ship1.Event.a.b", Subject{}, false},
		{"*.event.a.b", Subject{}, false},
		{"ship1.event.>", Subject{}, false},
		{"ship1.event.*.b", Subject{}, false},
		{"ship1.event.a>.b", Subject{}, false},
		{"ship 1.event.a.b", Subject{}, false},
		{"ship1.event.a\tx.b", Subject{}, false},
		{"ship1.event.a.b\n", Subject{}, false},
		{"ship1.event.a\x00.b", Subject{}, false},
		{"ship1.event.a\u200b.b", Subject{}, false},
		{"$SYS.event.a.b", Subject{}, false},
		{"ship1.event.a/b.c", Subject{}, false},
		{"ship1.event.\xff.b", Subject{}, false},
		{strings.Repeat("x", unit.MaxNameLen+1) + ".event.a.b", Subject{}, false},
	} {
		got, err := ParseSubject(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("ParseSubject(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("ParseSubject(%q).String() = %q", tc.in, got.String())
			}
			continue
		}
		if !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("ParseSubject(%q) = %+v, %v; want ErrInvalidSubject", tc.in, got, err)
		}
	}
}

func TestBuildSubjects(t *testing.T) {
	s, err := CommandSubject("ship2", "shellcommand", "operatingsystem")
	if err != nil || s != "ship2.command.shellcommand.operatingsystem" {
		t.Fatalf("CommandSubject = %q, %v", s, err)
	}
	s, err = EventSubject("ship1", "syslogforwarding", "nginx")
	if err != nil || s != "ship1.event.syslogforwarding.nginx" {
		t.Fatalf("EventSubject = %q, %v", s, err)
	}
	for _, bad := range [][3]string{
		{"", "m", "d"}, {"a.b", "m", "d"}, {"a", "", "d"}, {"a", "m", ""}, {"a", "m.x", "d"},
		{"a", "*", "d"}, {"a", "m", ">"}, {"a b", "m", "d"}, {"a", "m\r", "d"}, {"a", "m", "d\x7f"},
	} {
		if _, err := CommandSubject(bad[0], bad[1], bad[2]); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("CommandSubject(%q) = %v; want ErrInvalidSubject", bad, err)
		}
		if _, err := EventSubject(bad[0], bad[1], bad[2]); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("EventSubject(%q) = %v; want ErrInvalidSubject", bad, err)
		}
	}
	if _, err := CommandSubject("a.b", "m", "d"); !errors.Is(err, unit.ErrInvalidName) {
		t.Errorf("a bad unit name should also wrap unit.ErrInvalidName: %v", err)
	}
}

func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{
		"ship1.event.syslogforwarding.nginx", "ship2.command.shellcommand.operatingsystem", "a.b.c.d",
		"*.event.>", "ship1..a.b", "ship 1.event.a.b", "x.event.a\x00.b", "$SYS.event.a.b", "skib.event.måling.dæk",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSubject(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidSubject) {
				t.Fatalf("ParseSubject(%q): error %v does not wrap ErrInvalidSubject", in, err)
			}
			return
		}
		if s.String() != in {
			t.Fatalf("ParseSubject(%q).String() = %q", in, s.String())
		}
		var built string
		if s.Kind == KindCommand {
			built, err = CommandSubject(s.Unit, s.Method, s.Domain)
		} else {
			built, err = EventSubject(s.Unit, s.Method, s.Domain)
		}
		if err != nil || built != in {
			t.Fatalf("rebuilding %q gave %q, %v", in, built, err)
		}
		if strings.ContainsAny(in, "*> \t\r\n") {
			t.Fatalf("accepted %q with a wildcard or whitespace", in)
		}
	})
}
