package actors

import (
	"strings"
	"unicode/utf8"
)

// ClipText makes a text from outside (an agent's error or detail) storable:
// invalid UTF-8 becomes U+FFFD, and the result is at most max bytes, cut on
// a rune boundary.
func ClipText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
