package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"
)

// Kind names one of the two daily dumps.
type Kind string

const (
	// Readings holds the events of streams of category ReadingsCategory.
	Readings Kind = "readings"
	// Audit holds every other event.
	Audit Kind = "audit"
)

// kinds lists the dumps in the order they are written. Audit's manifest is
// written last, so a day is done once Audit's manifest is there (and
// Readings' is: Run checks both).
var kinds = [...]Kind{Readings, Audit}

// ReadingsCategory is the stream category ("readings-<unit>") of the events
// that go to the readings dump.
const ReadingsCategory = "readings"

const (
	dataSuffix     = ".ndjson.gz"
	manifestSuffix = ".manifest.json"
	dayLayout      = "2006-01-02"
)

// ObjectKey returns the key of a day's data object, e.g.
// "readings/2026/11/22.ndjson.gz".
func ObjectKey(k Kind, day time.Time) string { return dayPrefix(k, day) + dataSuffix }

// ManifestKey returns the key of a day's manifest, e.g.
// "readings/2026/11/22.manifest.json".
func ManifestKey(k Kind, day time.Time) string { return dayPrefix(k, day) + manifestSuffix }

func dayPrefix(k Kind, day time.Time) string {
	d := Day(day)
	return fmt.Sprintf("%s/%04d/%02d/%02d", k, d.Year(), int(d.Month()), d.Day())
}

// Day returns the UTC midnight that starts the UTC day containing t.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// ParseDay parses a "YYYY-MM-DD" date as a UTC day.
func ParseDay(s string) (time.Time, error) {
	t, err := time.Parse(dayLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("dump: day %q: want YYYY-MM-DD: %w", s, err)
	}
	return t, nil
}

// FormatDay formats the UTC day containing t as "YYYY-MM-DD".
func FormatDay(t time.Time) string { return Day(t).Format(dayLayout) }

// latestManifestDay finds the latest day that has a manifest of kind k by
// walking the year, month and day levels of the layout from the newest,
// listing each level with a delimiter: a handful of small List calls, not a
// listing of every object. A year or month holding no manifest (only the data
// of an interrupted run, say) is passed over. ok is false when there is none.
func latestManifestDay(ctx context.Context, b *blob.Bucket, k Kind) (day time.Time, ok bool, err error) {
	var walk func(prefix string, level int, parts []int) (time.Time, bool, error)
	walk = func(prefix string, level int, parts []int) (time.Time, bool, error) {
		width := [3]int{4, 2, 2}[level]
		var names []int
		it := b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
		for {
			obj, err := it.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return time.Time{}, false, fmt.Errorf("dump: list %s: %w: %w", prefix, ErrBucket, err)
			}
			name := strings.TrimPrefix(obj.Key, prefix)
			switch {
			case level < 2 && obj.IsDir:
				name = strings.TrimSuffix(name, "/")
			case level == 2 && !obj.IsDir && strings.HasSuffix(name, manifestSuffix):
				name = strings.TrimSuffix(name, manifestSuffix)
			default:
				continue
			}
			if n, ok := parseFixed(name, width); ok {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range slices.Backward(names) {
			p := append(parts[:level:level], n)
			if level == 2 {
				d := time.Date(p[0], time.Month(p[1]), p[2], 0, 0, 0, 0, time.UTC)
				if d.Year() == p[0] && int(d.Month()) == p[1] && d.Day() == p[2] {
					return d, true, nil
				}
				continue
			}
			d, ok, err := walk(fmt.Sprintf("%s%0*d/", prefix, width, n), level+1, p)
			if err != nil || ok {
				return d, ok, err
			}
		}
		return time.Time{}, false, nil
	}
	return walk(string(k)+"/", 0, nil)
}

// parseFixed parses a decimal of exactly width digits.
func parseFixed(s string, width int) (int, bool) {
	if len(s) != width {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
