package dump

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validManifest() Manifest {
	return Manifest{
		Format: ManifestFormat, Kind: Readings, Day: "2026-11-22",
		Object: "readings/2026/11/22.ndjson.gz", Count: 3, FirstPosition: 3, LastPosition: 7,
		SHA256: strings.Repeat("ab", 32), Size: 300, CompressedSize: 120, Undecoded: 1,
		Complete: true, Tolerance: "10m0s",
		Scan:    Scan{From: 1, To: 10, Next: 8, HeadPosition: 10, HeadTime: at(23, 0, 10, 0, 0)},
		Created: testNow,
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := validManifest()
	data, err := EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	empty := validManifest()
	empty.Count, empty.FirstPosition, empty.LastPosition, empty.Size, empty.Undecoded = 0, 0, 0, 0, 0
	if _, err := EncodeManifest(empty); err != nil {
		t.Fatalf("empty day: %v", err)
	}
}

func TestManifestValidate(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*Manifest)
	}{
		{"format", func(m *Manifest) { m.Format = 2 }},
		{"kind", func(m *Manifest) { m.Kind = "other" }},
		{"day", func(m *Manifest) { m.Day = "2026-13-01" }},
		{"object of another day", func(m *Manifest) { m.Object = "readings/2026/11/23.ndjson.gz" }},
		{"object of another kind", func(m *Manifest) { m.Object = "audit/2026/11/22.ndjson.gz" }},
		{"short digest", func(m *Manifest) { m.SHA256 = "abc" }},
		{"uppercase digest", func(m *Manifest) { m.SHA256 = strings.Repeat("AB", 32) }},
		{"negative size", func(m *Manifest) { m.CompressedSize = -1 }},
		{"count beyond positions", func(m *Manifest) { m.Count = 6 }},
		{"first after last", func(m *Manifest) { m.FirstPosition = 8 }},
		{"empty with positions", func(m *Manifest) { m.Count, m.Undecoded = 0, 0 }},
		{"too small", func(m *Manifest) { m.Size = 5 }},
		{"undecoded beyond count", func(m *Manifest) { m.Undecoded = 4 }},
		{"tolerance", func(m *Manifest) { m.Tolerance = "-1s" }},
		{"scan from zero", func(m *Manifest) { m.Scan.From = 0 }},
		{"next beyond scan", func(m *Manifest) { m.Scan.Next = 12 }},
		{"events outside the scan", func(m *Manifest) { m.Scan.To = 6; m.Scan.Next = 6 }},
		{"out of order beyond scan", func(m *Manifest) { m.Scan.OutOfOrder = 11 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := validManifest()
			c.change(&m)
			if err := m.Validate(); !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("Validate: %v, want ErrInvalidManifest", err)
			}
			if _, err := EncodeManifest(m); !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("EncodeManifest: %v, want ErrInvalidManifest", err)
			}
		})
	}
}

func TestDecodeManifestRejects(t *testing.T) {
	good, err := EncodeManifest(validManifest())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"empty":         "",
		"not JSON":      "manifest",
		"array":         "[]",
		"unknown field": strings.Replace(string(good), `"format"`, `"extra": 1, "format"`, 1),
		"trailing data": string(good) + "{}",
		"wrong type":    strings.Replace(string(good), `"count": 3`, `"count": "3"`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeManifest([]byte(data)); !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("DecodeManifest: %v, want ErrInvalidManifest", err)
			}
		})
	}
}

// FuzzDecodeManifest: any bytes decode to a valid manifest or an
// ErrInvalidManifest, never a panic, and what decodes re-encodes to the same
// manifest.
func FuzzDecodeManifest(f *testing.F) {
	good, err := EncodeManifest(validManifest())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(strings.Replace(string(good), `"count": 3`, `"count": 18446744073709551615`, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("error %v does not wrap ErrInvalidManifest", err)
			}
			return
		}
		again, err := EncodeManifest(m)
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		m2, err := DecodeManifest(again)
		if err != nil {
			t.Fatalf("re-encoded manifest does not decode: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(m, m2) || !m.Created.Equal(m2.Created) || m.Created.Location() != time.UTC {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", m, m2)
		}
	})
}
