package main

import (
	"math/bits"
	"time"
)

// histogram records durations in log-linear buckets: values below 64 ns
// exactly, above that with 64 sub-buckets per power of two (relative error
// under 1.6%). It is a fixed 30 KiB, so every writer keeps its own and
// recording costs a few nanoseconds and no allocation.
type histogram struct {
	counts [(64 - histSubBits + 1) << histSubBits]uint64
	n      uint64
}

const histSubBits = 6

func histBucket(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	l := bits.Len64(v)
	row := l - histSubBits
	mant := v >> (l - histSubBits - 1) // in [2^s, 2^(s+1))
	return row<<histSubBits | int(mant-1<<histSubBits)
}

// histValue returns the middle of bucket i, in nanoseconds.
func histValue(i int) float64 {
	row, j := i>>histSubBits, uint64(i&(1<<histSubBits-1))
	if row == 0 {
		return float64(j)
	}
	lo := (1<<histSubBits + j) << (row - 1)
	width := uint64(1) << (row - 1)
	return float64(lo) + float64(width)/2
}

func (h *histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histBucket(uint64(d))]++
	h.n++
}

func (h *histogram) Merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

func (h *histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0 < q <= 1) in microseconds, 0 when empty.
func (h *histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return histValue(i) / 1e3
		}
	}
	return 0
}
