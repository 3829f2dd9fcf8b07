package events

import "strconv"

// Expect is the optimistic-concurrency condition of an Append: what the
// appender believes the stream's current version is. The zero value is Any.
type Expect struct {
	kind    expectKind
	version uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectExactly
)

var (
	// Any appends whatever the stream's version.
	Any = Expect{}
	// NoStream appends only when the stream has no events.
	NoStream = Expect{kind: expectNoStream}
	// Exists appends only when the stream has at least one event.
	Exists = Expect{kind: expectExists}
)

// Exactly appends only when the stream's current version is v. Exactly(0) is
// the same as NoStream.
func Exactly(v uint64) Expect {
	if v == 0 {
		return NoStream
	}
	return Expect{kind: expectExactly, version: v}
}

// Version returns the exact version e expects and whether e is an exact
// expectation (NoStream expects version 0).
func (e Expect) Version() (uint64, bool) {
	switch e.kind {
	case expectExactly:
		return e.version, true
	case expectNoStream:
		return 0, true
	}
	return 0, false
}

// Allows reports whether a stream at version current (0: no stream) satisfies e.
func (e Expect) Allows(current uint64) bool {
	switch e.kind {
	case expectNoStream:
		return current == 0
	case expectExists:
		return current > 0
	case expectExactly:
		return current == e.version
	}
	return true
}

func (e Expect) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectExists:
		return "stream exists"
	case expectExactly:
		return "version " + strconv.FormatUint(e.version, 10)
	}
	return "any version"
}
