package events

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxStreamNameLen is the longest stream name a store accepts, in bytes.
const MaxStreamNameLen = 255

// ValidateStream checks that name is "<category>-<id>":
//   - the category is 1-32 characters of a-z and 0-9, starting with a letter;
//   - the id is non-empty valid UTF-8 with no whitespace (unicode.IsSpace),
//     no control characters (unicode.IsControl) and none of the NATS
//     wildcards '*' and '>';
//   - the whole name is at most MaxStreamNameLen bytes.
//
// Ids are case-sensitive. Dots are allowed in ids (process streams are
// "process-<unit>.<method>.<domain>"); aggregates that need stricter ids, such
// as unit names, check them themselves. The error wraps ErrInvalidStreamName
// and says what is wrong.
func ValidateStream(name string) error {
	_, _, err := SplitStream(name)
	return err
}

// SplitStream returns the category and id of a valid stream name.
func SplitStream(name string) (category, id string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidStreamName, name, why)
	}
	if name == "" {
		return "", "", bad("empty")
	}
	if len(name) > MaxStreamNameLen {
		return "", "", bad(fmt.Sprintf("longer than %d bytes", MaxStreamNameLen))
	}
	i := strings.IndexByte(name, '-')
	if i < 0 {
		return "", "", bad(`want "<category>-<id>", no '-' found`)
	}
	category, id = name[:i], name[i+1:]
	if category == "" {
		return "", "", bad("empty category")
	}
	if len(category) > 32 {
		return "", "", bad("category longer than 32 characters")
	}
	for j := 0; j < len(category); j++ {
		c := category[j]
		if !(c >= 'a' && c <= 'z' || j > 0 && c >= '0' && c <= '9') {
			return "", "", bad("category must be lowercase letters and digits, starting with a letter")
		}
	}
	if id == "" {
		return "", "", bad("empty id")
	}
	if !utf8.ValidString(id) {
		return "", "", bad("id is not valid UTF-8")
	}
	for _, r := range id {
		switch {
		case r == '*' || r == '>':
			return "", "", bad(fmt.Sprintf("id contains wildcard %q", r))
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return "", "", bad(fmt.Sprintf("id contains whitespace or control character %q", r))
		}
	}
	return category, id, nil
}

// Category returns the part of a stream name before the first '-', or the
// whole name when it has none. It does not validate.
func Category(stream string) string {
	if i := strings.IndexByte(stream, '-'); i >= 0 {
		return stream[:i]
	}
	return stream
}
