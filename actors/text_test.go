package actors_test

import (
	"testing"
	"unicode/utf8"

	"github.com/logbook-fleet/logbook/actors"
)

func TestClipText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"bad\xffbyte", 20, "bad\uFFFDbyte"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: never cut a rune in half
		{"", 0, ""},
	} {
		got := actors.ClipText(tc.in, tc.max)
		if got != tc.want || !utf8.ValidString(got) || len(got) > max(tc.max, len(tc.want)) {
			t.Errorf("ClipText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
