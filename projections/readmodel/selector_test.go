package readmodel_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/logbook-fleet/logbook/projections/readmodel"
)

func TestParseSelector(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want readmodel.Selector
		err  bool
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "site=north", want: readmodel.Selector{{Key: "site", Op: readmodel.OpEquals, Value: "north"}}},
		{in: " site = north , tier!=edge,gpu, !legacy", want: readmodel.Selector{
			{Key: "site", Op: readmodel.OpEquals, Value: "north"},
			{Key: "tier", Op: readmodel.OpNotEquals, Value: "edge"},
			{Key: "gpu", Op: readmodel.OpExists},
			{Key: "legacy", Op: readmodel.OpNotExists},
		}},
		{in: "k=", want: readmodel.Selector{{Key: "k", Op: readmodel.OpEquals, Value: ""}}},
		{in: "région=nörd", want: readmodel.Selector{{Key: "région", Op: readmodel.OpEquals, Value: "nörd"}}},
		{in: "a=b,", err: true},
		{in: ",a", err: true},
		{in: "=v", err: true},
		{in: "!", err: true},
		{in: "a=b=c", err: true},
		{in: "a!=b!=c", err: true},
		{in: "!!a", err: true},
		{in: "a b=c", err: true},
		{in: "a=\x00", err: true},
		{in: "a=\xff", err: true},
	} {
		got, err := readmodel.ParseSelector(tc.in)
		switch {
		case tc.err && !errors.Is(err, readmodel.ErrInvalidQuery):
			t.Errorf("ParseSelector(%q) = %v, %v; want ErrInvalidQuery", tc.in, got, err)
		case !tc.err && err != nil:
			t.Errorf("ParseSelector(%q): %v", tc.in, err)
		case !tc.err && !reflect.DeepEqual(got, tc.want):
			t.Errorf("ParseSelector(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestSelectorMatches(t *testing.T) {
	labels := map[string]string{"site": "north", "tier": "edge"}
	for sel, want := range map[string]bool{
		"":                     true,
		"site=north":           true,
		"site=south":           false,
		"site!=south":          true,
		"gpu!=yes":             true,
		"site,tier":            true,
		"gpu":                  false,
		"!gpu":                 true,
		"!site":                false,
		"site=north,tier=core": false,
	} {
		s, err := readmodel.ParseSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Matches(labels); got != want {
			t.Errorf("%q.Matches = %v, want %v", sel, got, want)
		}
	}
}

// FuzzParseSelector: parsing never panics, errors wrap ErrInvalidQuery,
// and a parsed selector's String parses back to the same selector.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"", "a=b", "a!=b,c,!d", " x = y ", "a=b=c", "!", ",", "k=", "é=ü", "a=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := readmodel.ParseSelector(s)
		if err != nil {
			if !errors.Is(err, readmodel.ErrInvalidQuery) {
				t.Fatalf("ParseSelector(%q) error %v does not wrap ErrInvalidQuery", s, err)
			}
			return
		}
		again, err := readmodel.ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("ParseSelector(%q).String() = %q does not parse: %v", s, sel.String(), err)
		}
		if !reflect.DeepEqual(sel, again) {
			t.Fatalf("round trip of %q: %#v != %#v", s, sel, again)
		}
		for _, r := range sel {
			if r.Key == "" {
				t.Fatalf("ParseSelector(%q) gave an empty key", s)
			}
		}
	})
}
