package events_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/logbook-fleet/logbook/events"
)

func TestSplitStream(t *testing.T) {
	good := []struct{ name, category, id string }{
		{"unit-ship1", "unit", "ship1"},
		{"process-ship1.syslogforwarding.nginx", "process", "ship1.syslogforwarding.nginx"},
		{"release-2026.11.3", "release", "2026.11.3"},
		{"readings-Ship_1", "readings", "Ship_1"},
		{"channel-stable", "channel", "stable"},
		{"rollout-0190c5e2-7b1a-7cc0-8f00-000000000000", "rollout", "0190c5e2-7b1a-7cc0-8f00-000000000000"},
		{"a-b", "a", "b"},
		{"u2-x", "u2", "x"},
		{"unit--x", "unit", "-x"},
		{"unit-größe", "unit", "größe"},
		{strings.Repeat("c", 32) + "-x", strings.Repeat("c", 32), "x"},
		{"unit-" + strings.Repeat("x", events.MaxStreamNameLen-5), "unit", strings.Repeat("x", events.MaxStreamNameLen-5)},
	}
	for _, tc := range good {
		cat, id, err := events.SplitStream(tc.name)
		if err != nil || cat != tc.category || id != tc.id {
			t.Errorf("SplitStream(%q) = %q, %q, %v; want %q, %q", tc.name, cat, id, err, tc.category, tc.id)
		}
		if err := events.ValidateStream(tc.name); err != nil {
			t.Errorf("ValidateStream(%q) = %v", tc.name, err)
		}
	}
	bad := []struct{ what, name string }{
		{"empty", ""},
		{"no dash", "unitship1"},
		{"uppercase category", "Unit-x"},
		{"category starts with a digit", "1unit-x"},
		{"category with underscore", "un_it-x"},
		{"category with dot", "un.it-x"},
		{"category too long", strings.Repeat("c", 33) + "-x"},
		{"empty id", "unit-"},
		{"empty category", "-x"},
		{"space", "unit-a b"},
		{"leading space", "unit- x"},
		{"tab", "unit-a\tb"},
		{"newline", "unit-a\n"},
		{"carriage return", "unit-a\rb"},
		{"wildcard star", "unit-a*b"},
		{"wildcard gt", "unit-a>b"},
		{"NUL", "unit-a\x00b"},
		{"escape", "unit-a\x1bb"},
		{"DEL", "unit-a\x7fb"},
		{"C1 control", "unit-a\u0085b"},
		{"C1 control 0x9f", "unit-a\u009fb"},
		{"no-break space", "unit-a\u00a0b"},
		{"em space", "unit-a\u2003b"},
		{"ideographic space", "unit-a\u3000b"},
		{"ogham space", "unit-a\u1680b"},
		{"line separator", "unit-a\u2028b"},
		{"invalid UTF-8", "unit-\xff"},
		{"truncated UTF-8", "unit-a\xc3"},
		{"surrogate half", "unit-\xed\xa0\x80"},
		{"too long", "unit-" + strings.Repeat("x", events.MaxStreamNameLen-4)},
	}
	for _, tc := range bad {
		cat, id, err := events.SplitStream(tc.name)
		if !errors.Is(err, events.ErrInvalidStreamName) {
			t.Errorf("%s: SplitStream(%q) = %q, %q, %v; want ErrInvalidStreamName", tc.what, tc.name, cat, id, err)
		}
		if !errors.Is(events.ValidateStream(tc.name), events.ErrInvalidStreamName) {
			t.Errorf("%s: ValidateStream(%q) accepted", tc.what, tc.name)
		}
	}
}

func TestCategory(t *testing.T) {
	for _, tc := range []struct{ stream, want string }{
		{"unit-ship1", "unit"}, {"unit-a-b", "unit"}, {"units-a", "units"}, {"nodash", "nodash"}, {"-x", ""}, {"", ""},
	} {
		if got := events.Category(tc.stream); got != tc.want {
			t.Errorf("Category(%q) = %q, want %q", tc.stream, got, tc.want)
		}
	}
}

// streamRules is ValidateStream's documentation, written out independently.
func streamRules(name string) bool {
	cat, id, ok := strings.Cut(name, "-")
	if !ok || len(name) > events.MaxStreamNameLen || len(cat) < 1 || len(cat) > 32 || id == "" || !utf8.ValidString(id) {
		return false
	}
	for i, c := range cat {
		if !('a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '*' || r == '>' {
			return false
		}
	}
	return true
}

func FuzzSplitStream(f *testing.F) {
	for _, s := range []string{
		"unit-ship1", "process-ship1.syslogforwarding.nginx", "release-2026.11.3", "readings-Ship_1",
		"", "-", "unit-", "-x", "Unit-x", "1unit-x", "unit-a b", "unit-a\tb", "unit-a*b", "unit-a>b",
		"unit-\x00", "unit-\xff", "unit-\u2003", "unit-\u0085", "a-b-c", strings.Repeat("a", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		cat, id, err := events.SplitStream(name)
		if want := streamRules(name); (err == nil) != want {
			t.Fatalf("SplitStream(%q) error %v, but the documented rules say valid=%v", name, err, want)
		}
		if err != nil {
			if !errors.Is(err, events.ErrInvalidStreamName) {
				t.Fatalf("SplitStream(%q): %v does not wrap ErrInvalidStreamName", name, err)
			}
			if cat != "" || id != "" {
				t.Fatalf("SplitStream(%q) rejected the name but returned %q, %q", name, cat, id)
			}
			return
		}
		if cat+"-"+id != name || events.Category(name) != cat {
			t.Fatalf("SplitStream(%q) = %q, %q: does not round-trip", name, cat, id)
		}
		if events.ValidateStream(name) != nil {
			t.Fatalf("ValidateStream(%q) disagrees with SplitStream", name)
		}
	})
}
