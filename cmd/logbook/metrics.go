package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logbook-fleet/logbook/events"
	"github.com/logbook-fleet/logbook/events/embedded"
	"github.com/logbook-fleet/logbook/projections/readmodel"
)

// meteredStore is the node's events.Store with Prometheus metrics of its
// appends: a latency histogram by outcome, and the embedded log's own
// counters (events made durable, fdatasyncs).
type meteredStore struct {
	events.Store
	embedded *embedded.Store
	latency  *prometheus.HistogramVec
	appended *prometheus.CounterVec

	durable, syncs, appends *prometheus.Desc
}

// newMeteredStore meters s; local, when not nil, is the embedded log
// whose counters are reported too.
func newMeteredStore(s events.Store, local *embedded.Store) *meteredStore {
	return &meteredStore{
		Store:    s,
		embedded: local,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "logbook_append_duration_seconds",
			Help:    "Time an Append to the event log took, from call to durable acknowledgement, by outcome (ok, conflict, error).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50µs .. 1.6s
		}, []string{"outcome"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logbook_appended_events_total",
			Help: "Events appended through this node's API, entities and bridge, by stream category.",
		}, []string{"category"}),
		durable: prometheus.NewDesc("logbook_log_events_total", "Events the embedded log made durable since start.", nil, nil),
		appends: prometheus.NewDesc("logbook_log_appends_total", "Appends the embedded log made durable since start (an append carries one or more events).", nil, nil),
		syncs:   prometheus.NewDesc("logbook_log_syncs_total", "fdatasync calls of the embedded log since start; events/syncs is the group-commit size.", nil, nil),
	}
}

// Append records the latency and outcome of every append.
func (m *meteredStore) Append(ctx context.Context, stream string, expect events.Expect, evs ...events.Event) (events.AppendResult, error) {
	start := time.Now()
	res, err := m.Store.Append(ctx, stream, expect, evs...)
	outcome := "ok"
	switch {
	case err == nil:
		if cat, _, splitErr := events.SplitStream(stream); splitErr == nil {
			m.appended.WithLabelValues(cat).Add(float64(len(evs)))
		}
	case errors.Is(err, events.ErrWrongExpectedVersion):
		outcome = "conflict"
	default:
		outcome = "error"
	}
	m.latency.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return res, err
}

// Describe implements prometheus.Collector.
func (m *meteredStore) Describe(ch chan<- *prometheus.Desc) {
	m.latency.Describe(ch)
	m.appended.Describe(ch)
	ch <- m.durable
	ch <- m.appends
	ch <- m.syncs
}

// Collect implements prometheus.Collector.
func (m *meteredStore) Collect(ch chan<- prometheus.Metric) {
	m.latency.Collect(ch)
	m.appended.Collect(ch)
	if m.embedded == nil {
		return
	}
	st := m.embedded.Stats()
	ch <- prometheus.MustNewConstMetric(m.durable, prometheus.CounterValue, float64(st.Events))
	ch <- prometheus.MustNewConstMetric(m.appends, prometheus.CounterValue, float64(st.Appends))
	ch <- prometheus.MustNewConstMetric(m.syncs, prometheus.CounterValue, float64(st.Syncs))
}

// fleetCollector reports the fleet and command outcomes from the read
// models at scrape time; while a read model is catching up its metrics are
// left out rather than reported wrong.
type fleetCollector struct {
	models                     readmodel.Reader
	units, connected, commands *prometheus.Desc
}

func newFleetCollector(models readmodel.Reader) *fleetCollector {
	return &fleetCollector{
		models:    models,
		units:     prometheus.NewDesc("logbook_units", "Registered units that are not decommissioned.", nil, nil),
		connected: prometheus.NewDesc("logbook_units_connected", "Units connected to the control plane now.", nil, nil),
		commands:  prometheus.NewDesc("logbook_commands", "Remote commands in the command history, by status (issued, delivered, succeeded, failed, expired, cancelled).", []string{"status"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.units
	ch <- c.connected
	ch <- c.commands
}

// Collect implements prometheus.Collector.
func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if fc, err := readmodel.CountUnits(ctx, c.models); err == nil {
		ch <- prometheus.MustNewConstMetric(c.units, prometheus.GaugeValue, float64(fc.Units))
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, float64(fc.Connected))
	}
	if counts, err := readmodel.CountCommands(ctx, c.models); err == nil {
		for status, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.commands, prometheus.GaugeValue, float64(n), status)
		}
	}
}

// progressVerifier is a store whose Verify can report progress (the
// embedded log and a cluster member); the API streams it to the client.
type progressVerifier interface {
	VerifyProgress(ctx context.Context, progress func(verified events.Head)) (events.Head, error)
}

// VerifyProgress passes progress through when the store reports it, so
// wrapping the store does not hide it from the API.
func (m *meteredStore) VerifyProgress(ctx context.Context, progress func(verified events.Head)) (events.Head, error) {
	if pv, ok := m.Store.(progressVerifier); ok {
		return pv.VerifyProgress(ctx, progress)
	}
	return m.Store.Verify(ctx)
}
