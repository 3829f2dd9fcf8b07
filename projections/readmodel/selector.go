package readmodel

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Op is a label selector requirement's operator.
type Op string

// Operators of a Requirement.
const (
	OpEquals    Op = "="  // key=value: the label is set to value
	OpNotEquals Op = "!=" // key!=value: the label is unset or set to another value
	OpExists    Op = ""   // key: the label is set
	OpNotExists Op = "!"  // !key: the label is unset
)

// Requirement is one term of a Selector.
type Requirement struct {
	Key   string
	Op    Op
	Value string // for OpEquals and OpNotEquals
}

// Selector selects units by their labels: every requirement must hold.
// The zero Selector selects every unit.
type Selector []Requirement

// MaxSelectorLen bounds the text ParseSelector accepts.
const MaxSelectorLen = 4096

// ParseSelector parses a label selector: requirements separated by commas,
// each "key=value", "key!=value", "key" (set) or "!key" (unset), with
// spaces around terms, keys and values ignored. Keys are non-empty; values
// may be empty ("key=" selects units whose label is set to ""). Keys and
// values are valid UTF-8 without ',', '=', '!' or spaces inside. The empty
// string is the empty Selector. Errors wrap ErrInvalidQuery.
func ParseSelector(s string) (Selector, error) {
	bad := func(why string) (Selector, error) {
		return nil, fmt.Errorf("%w: label selector %q: %s", ErrInvalidQuery, s, why)
	}
	if len(s) > MaxSelectorLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxSelectorLen))
	}
	if !utf8.ValidString(s) {
		return bad("not valid UTF-8")
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var sel Selector
	for term := range strings.SplitSeq(s, ",") {
		term = strings.TrimSpace(term)
		var r Requirement
		switch {
		case term == "":
			return bad("empty requirement")
		case strings.Contains(term, "!="):
			k, v, _ := strings.Cut(term, "!=")
			r = Requirement{Key: strings.TrimSpace(k), Op: OpNotEquals, Value: strings.TrimSpace(v)}
		case strings.Contains(term, "="):
			k, v, _ := strings.Cut(term, "=")
			r = Requirement{Key: strings.TrimSpace(k), Op: OpEquals, Value: strings.TrimSpace(v)}
		case strings.HasPrefix(term, "!"):
			r = Requirement{Key: strings.TrimSpace(term[1:]), Op: OpNotExists}
		default:
			r = Requirement{Key: term, Op: OpExists}
		}
		if r.Key == "" {
			return bad(fmt.Sprintf("requirement %q has no key", term))
		}
		for _, part := range []string{r.Key, r.Value} {
			if strings.ContainsAny(part, ",=! \t\r\n\v\f") {
				return bad(fmt.Sprintf("requirement %q: keys and values may not contain ',', '=', '!' or spaces", term))
			}
			if strings.ContainsFunc(part, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
				return bad(fmt.Sprintf("requirement %q: control character", term))
			}
		}
		sel = append(sel, r)
	}
	return sel, nil
}

// String renders s in the form ParseSelector reads.
func (s Selector) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		switch r.Op {
		case OpEquals, OpNotEquals:
			parts[i] = r.Key + string(r.Op) + r.Value
		case OpNotExists:
			parts[i] = "!" + r.Key
		default:
			parts[i] = r.Key
		}
	}
	return strings.Join(parts, ",")
}

// Matches reports whether labels satisfy every requirement of s.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s {
		v, ok := labels[r.Key]
		switch r.Op {
		case OpEquals:
			if !ok || v != r.Value {
				return false
			}
		case OpNotEquals:
			if ok && v == r.Value {
				return false
			}
		case OpExists:
			if !ok {
				return false
			}
		case OpNotExists:
			if ok {
				return false
			}
		}
	}
	return true
}
