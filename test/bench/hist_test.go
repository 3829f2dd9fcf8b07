package main

import (
	"math"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 100_000; i++ {
		h.Record(time.Duration(i) * time.Microsecond / 10) // 0.1 µs .. 10 ms
	}
	for _, tc := range []struct{ q, want float64 }{{0.5, 5000}, {0.99, 9900}, {1, 10000}} {
		got := h.Quantile(tc.q)
		if math.Abs(got-tc.want)/tc.want > 0.016 {
			t.Errorf("Quantile(%v) = %v µs, want %v ± 1.6%%", tc.q, got, tc.want)
		}
	}
	var small histogram
	small.Record(5)
	if got := small.Quantile(0.5); got != 0.005 {
		t.Errorf("5 ns: got %v µs", got)
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		i := histBucket(v)
		if i < 0 || i >= len(h.counts) {
			t.Fatalf("bucket(%d) = %d out of range", v, i)
		}
		if mid := histValue(i); math.Abs(mid-float64(v)) > float64(v)/60+1 {
			t.Fatalf("bucket(%d) middle %v too far", v, mid)
		}
	}
	if i := histBucket(math.MaxUint64); i >= len(h.counts) {
		t.Fatalf("bucket(max) = %d out of range", i)
	}
}
