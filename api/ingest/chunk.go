package ingest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// Chunking. An upload's valid readings are cut into chunks with
// content-defined boundaries, as rsync and restic cut files: after a
// reading whose natural key (sensor, time) hashes to a multiple of
// chunkAvg, once the chunk has at least chunkMin readings, and in any case
// at chunkMax. Each chunk becomes one ReadingsBatch event whose id is a
// digest of the unit and the chunk's content, so that
//
//   - an identical retry produces the same events, which the log
//     de-duplicates by id (Append returns the original result);
//   - a retry that starts elsewhere in the backlog (the client resumed at
//     some line) realigns with the first upload at the first boundary
//     after chunkMin readings: only the readings before it are stored a
//     second time in the log, and the read model, keyed by (unit, sensor,
//     time), ignores them.
//
// The parameters and the hash are part of the id scheme: changing them
// makes retries of uploads made before the change store their readings
// again. idScheme names the scheme inside the id digest.
const (
	chunkMin = 256
	chunkAvg = 1024 // a power of two
	chunkMax = 8192
	idScheme = "logbook.ingest.v1"
)

// chunkParams are the chunking parameters; tests use smaller ones.
type chunkParams struct{ min, avgMask, max int }

var defaultChunking = chunkParams{min: chunkMin, avgMask: chunkAvg - 1, max: chunkMax}

// chunk accumulates readings in the columnar layout of ReadingsBatch. It
// copies what it keeps: a reading's sensor may alias a reused buffer.
type chunk struct {
	params  chunkParams
	dict    map[string]uint32
	sensors []string
	index   []uint32
	values  []float64
	times   []int64
	// firstLine and lastLine are the body lines of the first and last
	// reading, for logs and errors.
	firstLine, lastLine int
}

func newChunk(p chunkParams) *chunk {
	return &chunk{
		params: p,
		dict:   make(map[string]uint32),
		index:  make([]uint32, 0, p.max),
		values: make([]float64, 0, p.max),
		times:  make([]int64, 0, p.max),
	}
}

// add appends r, read from body line line, and reports whether the chunk
// ends after it.
func (c *chunk) add(r reading, line int) bool {
	i, ok := c.dict[string(r.sensor)]
	if !ok {
		i = uint32(len(c.sensors))
		s := string(r.sensor)
		c.dict[s] = i
		c.sensors = append(c.sensors, s)
	}
	if len(c.values) == 0 {
		c.firstLine = line
	}
	c.lastLine = line
	c.index = append(c.index, i)
	c.values = append(c.values, r.value)
	c.times = append(c.times, r.nanos)
	n := len(c.values)
	return n >= c.params.max || n >= c.params.min && boundaryHash(r.sensor, r.nanos)&uint64(c.params.avgMask) == 0
}

func (c *chunk) len() int { return len(c.values) }

func (c *chunk) reset() {
	clear(c.dict)
	c.sensors = c.sensors[:0]
	c.index = c.index[:0]
	c.values = c.values[:0]
	c.times = c.times[:0]
}

// event encodes the chunk as one ReadingsBatch event of unit, with its
// deterministic id. The event does not alias the chunk.
func (c *chunk) event(unit string, md events.Metadata) (events.Event, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(&logbookv1.ReadingsBatch{
		Sensors:       c.sensors,
		SensorIndex:   c.index,
		Values:        c.values,
		TimesUnixNano: c.times,
	})
	if err != nil {
		return events.Event{}, fmt.Errorf("encode readings batch: %w", err)
	}
	return events.Event{ID: batchID(unit, data), Type: batchType, Data: data, Metadata: md}, nil
}

var batchType = string(proto.MessageName(&logbookv1.ReadingsBatch{}))

// batchID derives a chunk's event id: the first 16 bytes of
// SHA-256(idScheme, unit, data) as a version 8 (custom) UUID.
func batchID(unit string, data []byte) uuid.UUID {
	h := sha256.New()
	h.Write([]byte(idScheme))
	h.Write([]byte{0})
	h.Write([]byte(unit))
	h.Write([]byte{0})
	h.Write(data)
	var sum [sha256.Size]byte
	var id uuid.UUID
	copy(id[:], h.Sum(sum[:0]))
	id[6] = id[6]&0x0f | 0x80 // version 8
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}

// boundaryHash hashes a reading's natural key (FNV-1a over the sensor,
// then the time, finished with a 64-bit mixer so that the low bits the
// boundary test looks at depend on every input bit). It is part of the id
// scheme: never change it.
func boundaryHash(sensor []byte, nanos int64) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, c := range sensor {
		h = (h ^ uint64(c)) * prime
	}
	var t [8]byte
	binary.LittleEndian.PutUint64(t[:], uint64(nanos))
	for _, c := range t {
		h = (h ^ uint64(c)) * prime
	}
	// splitmix64's finalizer.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// maxBatchBytes bounds the encoded size of one chunk: chunkMax readings of
// 17 bytes plus chunkMax sensors of MaxSensorLen, with framing. It must
// stay within events.MaxDataLen.
const maxBatchBytes = chunkMax*(1+4+1+8+8+1+2) + chunkMax*(MaxSensorLen+3) + 64

// A chunk fits one event: this constant overflows (a compile error) if not.
const _ = uint(events.MaxDataLen - maxBatchBytes)
