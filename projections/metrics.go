package projections

import "github.com/prometheus/client_golang/prometheus"

// Collector exports a Runner's projections as Prometheus metrics, read from
// Status at scrape time, labelled by projection:
//
//	logbook_projection_checkpoint        gauge    position of the last committed event
//	logbook_projection_head              gauge    head of the log last seen
//	logbook_projection_lag               gauge    head minus checkpoint, in events
//	logbook_projection_version           gauge    version being run
//	logbook_projection_ready             gauge    1 when reads can be served
//	logbook_projection_events_total      counter  events handled (rate() is events/s)
//	logbook_projection_errors_total      counter  failed batches, subscriptions and switches
//
// Register it once: prometheus.MustRegister(projections.NewCollector(r)).
type Collector struct {
	r                                                *Runner
	checkpoint, head, lag, version, ready, evs, errs *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector for r.
func NewCollector(r *Runner) *Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("logbook_projection_"+name, help, []string{"projection"}, nil)
	}
	return &Collector{
		r:          r,
		checkpoint: d("checkpoint", "Position of the last event the projection committed."),
		head:       d("head", "Head position of the log the projection last saw."),
		lag:        d("lag", "Head minus checkpoint, in events."),
		version:    d("version", "Version of the projection being run."),
		ready:      d("ready", "1 when the projection can serve reads, else 0."),
		evs:        d("events_total", "Events handled by the projection since start."),
		errs:       d("errors_total", "Failures (batches, subscriptions, switches) since start."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.checkpoint, c.head, c.lag, c.version, c.ready, c.evs, c.errs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.r.Statuses() {
		ready := 0.0
		if st.Ready {
			ready = 1
		}
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, st.Name)
		}
		g(c.checkpoint, float64(st.Checkpoint))
		g(c.head, float64(st.Head))
		g(c.lag, float64(st.Lag))
		g(c.version, float64(st.Version))
		g(c.ready, ready)
		ch <- prometheus.MustNewConstMetric(c.evs, prometheus.CounterValue, float64(st.Events), st.Name)
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(st.Errors), st.Name)
	}
}
