package ingest

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Service's Prometheus metrics.
type metrics struct {
	accepted, duplicates, invalid prometheus.Counter
	requests                      *prometheus.CounterVec
	appendSeconds                 prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "logbook", Subsystem: "ingest", Name: "readings_accepted_total",
			Help: "Readings of uploads that are in the log (stored, or found there already).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "logbook", Subsystem: "ingest", Name: "readings_duplicate_total",
			Help: "Accepted readings an earlier upload of the same chunk had already stored.",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "logbook", Subsystem: "ingest", Name: "lines_invalid_total",
			Help: "Upload lines rejected as invalid (malformed, too long, out of range).",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "logbook", Subsystem: "ingest", Name: "requests_total",
			Help: "Requests answered, by route (ingest, latest, buckets) and HTTP status code.",
		}, []string{"route", "code"}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "logbook", Subsystem: "ingest", Name: "append_seconds",
			Help:    "Latency of appending one chunk of readings to the log (durable).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.accepted, m.duplicates, m.invalid, m.requests, m.appendSeconds}
}

// Describe implements prometheus.Collector: register the Service with a
// registry to export its metrics (logbook_ingest_*).
func (s *Service) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.metrics.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (s *Service) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.metrics.collectors() {
		c.Collect(ch)
	}
}

var _ prometheus.Collector = (*Service)(nil)
