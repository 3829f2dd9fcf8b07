package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The jetstream and jetstream-sync subjects: an embedded nats-server with
// JetStream on file storage in a fresh directory, on a random loopback
// port, one stream "BENCH" on "bench.>". Default sync flushes to disk every
// 2 minutes (an ack means "in the server's page cache"); SyncAlways fsyncs
// after every message write (no group commit across publishers).

const jsStream = "BENCH"

type jsServer struct {
	srv *server.Server
	dir string
}

func startJetStream(cfg *Config, syncAlways bool) (*jsServer, error) {
	dir, err := cfg.TempDir("jetstream")
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "logbook-bench",
		Host:       "127.0.0.1",
		Port:       -1,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: syncAlways,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		os.RemoveAll(dir)
		return nil, errors.New("nats-server: not ready after 10s")
	}
	return &jsServer{srv: srv, dir: dir}, nil
}

func (s *jsServer) connect(ctx context.Context, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(s.srv.ClientURL(), nats.Name("logbook-bench"), nats.NoReconnect())
	if err != nil {
		return nil, nil, fmt.Errorf("nats connect: %w", err)
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func (s *jsServer) createStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	return js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     jsStream,
		Subjects: []string{"bench.>"},
		Storage:  jetstream.FileStorage,
	})
}

func (s *jsServer) stop() error {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	return os.RemoveAll(s.dir)
}

// jetstreamAppend measures writers publishers, each on its own connection
// and subject "bench.w<n>", each publish carrying the expected last
// sequence of its subject and waiting for the ack.
func jetstreamAppend(ctx context.Context, cfg *Config, writers int, syncAlways bool) (stats LoadStats, err error) {
	s, err := startJetStream(cfg, syncAlways)
	if err != nil {
		return LoadStats{}, err
	}
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
		err = errors.Join(err, s.stop())
	}()
	nc, js, err := s.connect(ctx)
	if err != nil {
		return LoadStats{}, err
	}
	conns = append(conns, nc)
	if _, err := s.createStream(ctx, js); err != nil {
		return LoadStats{}, fmt.Errorf("create stream: %w", err)
	}
	data := payload(payloadBytes)
	return RunLoad(ctx, Load{
		Writers: writers,
		PerCall: 1,
		Warmup:  cfg.Warmup,
		Measure: cfg.Duration,
		NewOp: func(w int) (Op, error) {
			nc, js, err := s.connect(ctx)
			if err != nil {
				return nil, err
			}
			conns = append(conns, nc)
			subject := fmt.Sprintf("bench.w%d", w)
			var last uint64 // stream sequence of the subject's last message; 0: none
			return func(ctx context.Context) error {
				ack, err := js.Publish(ctx, subject, data, jetstream.WithExpectLastSequencePerSubject(last))
				if err != nil {
					return fmt.Errorf("publish %s after sequence %d: %w", subject, last, err)
				}
				last = ack.Sequence
				return nil
			}, nil
		},
	})
}

// jetstreamReplay loads n messages with async publishes, then reads them
// all with ordered consumers, pass after pass until cfg.Duration has
// elapsed (at least one pass).
func jetstreamReplay(ctx context.Context, cfg *Config, n int) (res Result, err error) {
	s, err := startJetStream(cfg, false)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, s.stop()) }()
	var pubErrs atomic.Int64
	nc, js, err := s.connect(ctx,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { pubErrs.Add(1) }))
	if err != nil {
		return Result{}, err
	}
	defer nc.Close()
	stream, err := s.createStream(ctx, js)
	if err != nil {
		return Result{}, fmt.Errorf("create stream: %w", err)
	}

	data := payload(payloadBytes)
	start := time.Now()
	for i := range n {
		// 1,000 subjects, like the logbook load's streams.
		if _, err := js.PublishAsync(fmt.Sprintf("bench.r%d", i%1000), data); err != nil {
			return Result{}, fmt.Errorf("publish async %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return Result{}, errors.New("async publishes not acknowledged after 2 minutes")
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	if e := pubErrs.Load(); e > 0 {
		return Result{}, fmt.Errorf("%d async publishes failed", e)
	}
	cfg.Logf("jetstream: loaded %d messages at %s/s", n, fmtInt(float64(n)/time.Since(start).Seconds()))

	var total int64
	passes := 0
	start = time.Now()
	for passes == 0 || time.Since(start) < cfg.Duration {
		got, err := jetstreamReadPass(ctx, stream, n)
		total += got
		if err != nil {
			return Result{}, fmt.Errorf("pass %d: %w", passes+1, err)
		}
		passes++
	}
	secs := time.Since(start).Seconds()
	return Result{
		Scenario: "replay",
		Subject:  "jetstream",
		Params:   []Param{P("payload_bytes", payloadBytes), P("stream_events", int64(n)), P("passes", int64(passes))},
		Events:   total,
		Seconds:  secs,
		OpsPerS:  float64(total) / secs,
	}, nil
}

func jetstreamReadPass(ctx context.Context, stream jetstream.Stream, n int) (int64, error) {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, fmt.Errorf("ordered consumer: %w", err)
	}
	var got, bytes atomic.Int64
	done := make(chan struct{})
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		bytes.Add(int64(len(msg.Data())))
		if got.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(4096))
	if err != nil {
		return 0, fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	select {
	case <-done:
		return got.Load(), nil
	case <-time.After(5 * time.Minute):
		return got.Load(), fmt.Errorf("read %d of %d messages in 5 minutes", got.Load(), n)
	case <-ctx.Done():
		return got.Load(), ctx.Err()
	}
}
