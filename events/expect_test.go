package events_test

import (
	"testing"

	"github.com/logbook-fleet/logbook/events"
)

func TestExpectAllows(t *testing.T) {
	tests := []struct {
		expect events.Expect
		allows []uint64
		denies []uint64
	}{
		{events.Any, []uint64{0, 1, 2, 1 << 63}, nil},
		{events.Expect{}, []uint64{0, 7}, nil},
		{events.NoStream, []uint64{0}, []uint64{1, 2}},
		{events.Exists, []uint64{1, 2, 1 << 63}, []uint64{0}},
		{events.Exactly(0), []uint64{0}, []uint64{1}},
		{events.Exactly(1), []uint64{1}, []uint64{0, 2}},
		{events.Exactly(42), []uint64{42}, []uint64{0, 41, 43}},
	}
	for _, tc := range tests {
		for _, v := range tc.allows {
			if !tc.expect.Allows(v) {
				t.Errorf("%v.Allows(%d) = false, want true", tc.expect, v)
			}
		}
		for _, v := range tc.denies {
			if tc.expect.Allows(v) {
				t.Errorf("%v.Allows(%d) = true, want false", tc.expect, v)
			}
		}
	}
}

func TestExpectVersion(t *testing.T) {
	tests := []struct {
		expect events.Expect
		v      uint64
		exact  bool
		str    string
	}{
		{events.Any, 0, false, "any version"},
		{events.NoStream, 0, true, "no stream"},
		{events.Exists, 0, false, "stream exists"},
		{events.Exactly(0), 0, true, "no stream"},
		{events.Exactly(7), 7, true, "version 7"},
	}
	for _, tc := range tests {
		v, exact := tc.expect.Version()
		if v != tc.v || exact != tc.exact || tc.expect.String() != tc.str {
			t.Errorf("%v: Version() = %d, %v; String() = %q; want %d, %v, %q", tc.expect, v, exact, tc.expect.String(), tc.v, tc.exact, tc.str)
		}
	}
	if events.Exactly(0) != events.NoStream {
		t.Error("Exactly(0) != NoStream")
	}
	if three := events.Exactly(3); three != events.Exactly(3) || three == events.Exactly(4) {
		t.Error("Exactly values do not compare by version")
	}
}
