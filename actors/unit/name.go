package unit

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Category is the stream category of units: unit ship1 lives in "unit-ship1".
const Category = "unit"

// MaxNameLen is the longest unit name (and subject token) in bytes. Three
// tokens, two dots and "process-" stay well within events.MaxStreamNameLen.
const MaxNameLen = 64

// ValidateToken checks that s can be one token of a NATS subject such as
// <unit>.command.<method>.<domain> and one part of a stream id: non-empty,
// at most MaxNameLen bytes of valid UTF-8, not starting with '$' (reserved
// for NATS system subjects), and free of dots, the wildcards '*' and '>',
// whitespace, path separators ('/' and '\', since names become file paths in
// dumps and the git mirror), and control or invisible characters (anything
// that is not unicode.IsGraphic). Tokens are case-sensitive. The error says
// what is wrong and wraps no sentinel: callers wrap their own.
func ValidateToken(s string) error {
	bad := func(why string) error { return fmt.Errorf("%q: %s", s, why) }
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("%.16q...: longer than %d bytes", s, MaxNameLen)
	case !utf8.ValidString(s):
		return bad("not valid UTF-8")
	case s[0] == '$':
		return bad("starts with '$' (reserved for NATS system subjects)")
	}
	for _, r := range s {
		switch {
		case r == '.':
			return bad("contains '.' (the subject token separator)")
		case r == '*' || r == '>':
			return bad(fmt.Sprintf("contains NATS wildcard %q", r))
		case unicode.IsSpace(r):
			return bad(fmt.Sprintf("contains whitespace %q", r))
		case r == '/' || r == '\\':
			return bad(fmt.Sprintf("contains path separator %q", r))
		case !unicode.IsGraphic(r):
			return bad(fmt.Sprintf("contains control or invisible character %U", r))
		}
	}
	return nil
}

// ValidateName checks that name can name a unit: see ValidateToken. The
// error wraps ErrInvalidName.
func ValidateName(name string) error {
	if err := ValidateToken(name); err != nil {
		return fmt.Errorf("%w %w", ErrInvalidName, err)
	}
	return nil
}

// StreamName returns the stream of unit name, "unit-<name>", or an error
// wrapping ErrInvalidName.
func StreamName(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return Category + "-" + name, nil
}

// Label limits.
const (
	// MaxLabels is the most labels a unit may have.
	MaxLabels = 64
	// MaxLabelKeyLen is the longest label key in bytes.
	MaxLabelKeyLen = 63
	// MaxLabelValueLen is the longest label value in bytes.
	MaxLabelValueLen = 255
)

// ValidateLabel checks one label. A key is 1 to MaxLabelKeyLen ASCII
// letters, digits, '-', '_', '.' and '/', starting and ending with a letter
// or digit ("site", "example.com/rack"). A value is at most MaxLabelValueLen
// bytes of valid UTF-8 with no control or invisible characters and no
// whitespace but ' '; it may be empty. The error wraps ErrInvalidLabel.
func ValidateLabel(key, value string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidLabel, fmt.Sprintf(format, args...))
	}
	if key == "" {
		return bad("empty key")
	}
	if len(key) > MaxLabelKeyLen {
		return bad("key %.16q...: longer than %d bytes", key, MaxLabelKeyLen)
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	for i := 0; i < len(key); i++ {
		c := key[i]
		edge := i == 0 || i == len(key)-1
		if !alnum(c) && (edge || c != '-' && c != '_' && c != '.' && c != '/') {
			return bad("key %q: want ASCII letters, digits, '-', '_', '.', '/', starting and ending with a letter or digit", key)
		}
	}
	if len(value) > MaxLabelValueLen {
		return bad("value of %q: longer than %d bytes", key, MaxLabelValueLen)
	}
	if !utf8.ValidString(value) {
		return bad("value of %q: not valid UTF-8", key)
	}
	for _, r := range value {
		if r != ' ' && (unicode.IsSpace(r) || !unicode.IsGraphic(r)) {
			return bad("value of %q: contains control or invisible character %U", key, r)
		}
	}
	return nil
}
