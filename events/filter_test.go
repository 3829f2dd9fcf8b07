package events_test

import (
	"fmt"
	"testing"

	"github.com/logbook-fleet/logbook/events"
)

func TestFilterMatch(t *testing.T) {
	const reg, ship = "logbook.v1.UnitRegistered", "logbook.v1.ReleaseShipped"
	tests := []struct {
		filter events.Filter
		stream string
		typ    string
		want   bool
	}{
		{events.Filter{}, "unit-a", reg, true},
		{events.Filter{Categories: []string{"unit"}}, "unit-a", reg, true},
		{events.Filter{Categories: []string{"unit"}}, "unit-a-b", reg, true},
		{events.Filter{Categories: []string{"unit"}}, "units-a", reg, false},
		{events.Filter{Categories: []string{"units"}}, "unit-a", reg, false},
		{events.Filter{Categories: []string{"un"}}, "unit-a", reg, false},
		{events.Filter{Categories: []string{"release", "unit"}}, "unit-a", reg, true},
		{events.Filter{Types: []string{reg}}, "unit-a", reg, true},
		{events.Filter{Types: []string{reg}}, "unit-a", reg + "2", false},
		{events.Filter{Types: []string{"logbook.v1"}}, "unit-a", reg, false},
		{events.Filter{Types: []string{ship, reg}}, "release-1", ship, true},
		{events.Filter{Categories: []string{"unit"}, Types: []string{reg}}, "unit-a", reg, true},
		{events.Filter{Categories: []string{"unit"}, Types: []string{reg}}, "unit-a", ship, false},
		{events.Filter{Categories: []string{"unit"}, Types: []string{reg}}, "release-1", reg, false},
		{events.Filter{Categories: []string{}, Types: []string{}}, "x-y", "t", true},
	}
	for _, tc := range tests {
		if got := tc.filter.Match(tc.stream, tc.typ); got != tc.want {
			t.Errorf("%+v.Match(%q, %q) = %v, want %v", tc.filter, tc.stream, tc.typ, got, tc.want)
		}
	}
	if !(events.Filter{}).IsZero() || (events.Filter{Types: []string{reg}}).IsZero() || (events.Filter{Categories: []string{"unit"}}).IsZero() {
		t.Error("IsZero is wrong")
	}
}

func ExampleFilter_Match() {
	f := events.Filter{Categories: []string{"unit"}, Types: []string{"logbook.v1.UnitRegistered"}}
	fmt.Println(f.Match("unit-ship1", "logbook.v1.UnitRegistered"))
	fmt.Println(f.Match("units-ship1", "logbook.v1.UnitRegistered"))
	fmt.Println(f.Match("unit-ship1", "logbook.v1.UnitRetired"))
	// Output:
	// true
	// false
	// false
}

func ExampleSplitStream() {
	category, id, err := events.SplitStream("process-ship1.syslogforwarding.nginx")
	fmt.Println(category, id, err)
	_, _, err = events.SplitStream("unit-ship 1")
	fmt.Println(err)
	// Output:
	// process ship1.syslogforwarding.nginx <nil>
	// invalid stream name "unit-ship 1": id contains whitespace or control character ' '
}
