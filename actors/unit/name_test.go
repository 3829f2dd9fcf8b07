package unit_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/logbook-fleet/logbook/actors/unit"
	"github.com/logbook-fleet/logbook/events"
)

func TestValidateName(t *testing.T) {
	valid := []string{"ship1", "Ship1", "ship-1", "ship_1", "a", "øresund", "船1", "x$", strings.Repeat("a", unit.MaxNameLen)}
	for _, name := range valid {
		if err := unit.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
	invalid := []struct{ why, name string }{
		{"empty", ""},
		{"too long", strings.Repeat("a", unit.MaxNameLen+1)},
		{"space", "ship 1"},
		{"tab", "ship\t1"},
		{"newline", "ship1\n"},
		{"no-break space", "ship\u00a01"},
		{"dot", "ship.1"},
		{"star", "ship*"},
		{"gt", "ship>"},
		{"system subject", "$SYS"},
		{"slash", "a/b"},
		{"backslash", `a\b`},
		{"NUL", "a\x00"},
		{"DEL", "a\x7f"},
		{"zero-width space", "a\u200bb"},
		{"bidi override", "a\u202eb"},
		{"invalid UTF-8", "a\xffb"},
	}
	for _, tc := range invalid {
		err := unit.ValidateName(tc.name)
		if !errors.Is(err, unit.ErrInvalidName) {
			t.Errorf("%s: ValidateName(%q) = %v, want ErrInvalidName", tc.why, tc.name, err)
		}
	}
}

func TestNamesAreCaseSensitive(t *testing.T) {
	a, _ := unit.StreamName("ship1")
	b, _ := unit.StreamName("Ship1")
	if a == b || a != "unit-ship1" {
		t.Errorf("StreamName: %q, %q", a, b)
	}
	if _, err := unit.StreamName("ship.1"); !errors.Is(err, unit.ErrInvalidName) {
		t.Errorf("StreamName(ship.1) = %v", err)
	}
}

func TestValidateLabel(t *testing.T) {
	valid := [][2]string{
		{"site", "north"}, {"example.com/rack", "r 1"}, {"a", ""}, {"A-b_c.d/e9", "ünïcödé"},
		{strings.Repeat("k", unit.MaxLabelKeyLen), strings.Repeat("v", unit.MaxLabelValueLen)},
	}
	for _, l := range valid {
		if err := unit.ValidateLabel(l[0], l[1]); err != nil {
			t.Errorf("ValidateLabel(%q, %q) = %v", l[0], l[1], err)
		}
	}
	invalid := [][2]string{
		{"", "v"}, {"-site", "v"}, {"site-", "v"}, {"si te", "v"}, {"sité", "v"}, {"a*b", "v"},
		{strings.Repeat("k", unit.MaxLabelKeyLen+1), "v"},
		{"k", strings.Repeat("v", unit.MaxLabelValueLen+1)},
		{"k", "a\tb"}, {"k", "a\nb"}, {"k", "\xff"}, {"k", "a\u200bb"},
	}
	for _, l := range invalid {
		if err := unit.ValidateLabel(l[0], l[1]); !errors.Is(err, unit.ErrInvalidLabel) {
			t.Errorf("ValidateLabel(%q, %q) = %v, want ErrInvalidLabel", l[0], l[1], err)
		}
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"ship1", "", "a.b", "a b", "*", ">", "$SYS", "船", "a\x00", "\xff", strings.Repeat("x", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := unit.ValidateName(name)
		if err != nil {
			if !errors.Is(err, unit.ErrInvalidName) {
				t.Fatalf("ValidateName(%q) = %v, does not wrap ErrInvalidName", name, err)
			}
			return
		}
		// A valid name is one subject-safe token...
		if name == "" || len(name) > unit.MaxNameLen || !utf8.ValidString(name) || name[0] == '$' {
			t.Fatalf("ValidateName accepted %q", name)
		}
		for _, r := range name {
			if strings.ContainsRune(".*>/\\", r) || unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsGraphic(r) {
				t.Fatalf("ValidateName accepted %q with %U", name, r)
			}
		}
		// ...that makes a valid stream and a valid process stream id.
		stream, err := unit.StreamName(name)
		if err != nil || events.ValidateStream(stream) != nil {
			t.Fatalf("StreamName(%q) = %q, %v; ValidateStream: %v", name, stream, err, events.ValidateStream(stream))
		}
		long := "process-" + name + "." + name + "." + name
		if err := events.ValidateStream(long); err != nil {
			t.Fatalf("process stream of three valid tokens: %v", err)
		}
	})
}
