package raft

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/logbook-fleet/logbook/events"
)

// proposal is one append waiting for the leader's batcher.
type proposal struct {
	enc    []byte // the encoded logbook.v1.ClusterAppend
	events int
	done   chan proposalResult // buffered: the batcher never blocks on it
}

// proposalResult is the outcome of a proposal: the append's result or
// error, and the applied head once its entry was applied.
type proposalResult struct {
	res  events.AppendResult
	err  error
	head events.Head
}

// batcher is the leader's group commit: it packs the appends that arrive
// while earlier entries are in flight into one raft entry, so that a raft
// round trip (and the replicas' syncs) carries many appends. It runs on
// every node; on a follower raft refuses its entries with ErrNotLeader and
// the appenders forward instead.
type batcher struct {
	raft      *hraft.Raft
	in        chan *proposal
	inflight  chan struct{} // a token per entry proposed and not yet applied
	maxEvents int
	maxBytes  int
	timeout   time.Duration
	quit      <-chan struct{} // closed when the node starts closing
	stopped   <-chan struct{} // closed once raft has shut down
	wg        sync.WaitGroup

	outstanding atomic.Int64 // events submitted and not yet answered
	lingerTimer *time.Timer  // run's
}

func newBatcher(r *hraft.Raft, cfg Config, quit, stopped <-chan struct{}) *batcher {
	return &batcher{
		raft:        r,
		in:          make(chan *proposal, 1024),
		inflight:    make(chan struct{}, cfg.MaxInflight),
		maxEvents:   cfg.MaxBatchEvents,
		maxBytes:    cfg.MaxBatchBytes,
		timeout:     cfg.CallTimeout,
		quit:        quit,
		stopped:     stopped,
		lingerTimer: stoppedTimer(),
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// submit proposes enc and waits for its outcome. Once the proposal is
// handed over, a ctx that ends makes the outcome unknown.
func (b *batcher) submit(ctx context.Context, enc []byte, nevents int) proposalResult {
	p := &proposal{enc: enc, events: nevents, done: make(chan proposalResult, 1)}
	b.outstanding.Add(int64(nevents))
	defer b.outstanding.Add(-int64(nevents))
	select {
	case b.in <- p:
	case <-ctx.Done():
		return proposalResult{err: ctx.Err()}
	case <-b.quit:
		return proposalResult{err: ErrClosed}
	}
	select {
	case r := <-p.done:
		return r
	case <-ctx.Done():
		return proposalResult{err: fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())}
	case <-b.stopped:
		// p may have gone into b.in after run had failed the queue and
		// returned (select picks among ready cases at random): nobody
		// would answer it.
		select {
		case r := <-p.done:
			return r
		default:
			return proposalResult{err: fmt.Errorf("%w: the node shut down: %w", ErrUnknownOutcome, ErrClosed)}
		}
	}
}

// run collects proposals into entries until quit is closed.
func (b *batcher) run() {
	defer b.wg.Wait()
	for {
		var first *proposal
		select {
		case first = <-b.in:
		case <-b.quit:
			b.failQueued()
			return
		}
		props := []*proposal{first}
		nevents, nbytes := first.events, len(first.enc)
		share := b.share()
		full := func() bool { return nevents >= share || nbytes >= b.maxBytes }
		add := func(p *proposal) {
			props = append(props, p)
			nevents += p.events
			nbytes += len(p.enc)
		}
		// Whatever is queued goes along; then wait for an in-flight slot,
		// taking what arrives meanwhile into this entry.
	drain:
		for !full() {
			select {
			case p := <-b.in:
				add(p)
			default:
				break drain
			}
		}
		if !full() {
			b.linger(add, full)
		}
	slot:
		for {
			in := b.in
			if full() {
				in = nil
			}
			select {
			case b.inflight <- struct{}{}:
				break slot
			case p := <-in:
				add(p)
			case <-b.quit:
				deliver(props, proposalResult{err: ErrClosed})
				b.failQueued()
				return
			}
		}
		b.propose(props, nbytes)
	}
}

// share is how many events the entry being formed waits for: an equal
// share of the appends outstanding (submitted and not yet answered) per
// in-flight slot. Appenders come back in bursts, as each entry is answered
// together; without a share, the first entry to find a free slot took all
// of a burst, and the few appends that came back later went as entries of
// one or two events, each holding a slot and paying a whole raft round
// trip. Equal entries keep the raft pipeline (the leader's disk, the
// followers' disks, the commit) busy with about as many events each.
func (b *batcher) share() int {
	k := int64(cap(b.inflight))
	n := (b.outstanding.Load() + k - 1) / k
	return int(max(1, min(n, int64(b.maxEvents))))
}

// lingerFor bounds how long an entry that has not its share waits for more
// appends: about as long as appenders take to come back after an answer.
const lingerFor = 200 * time.Microsecond

// linger takes arriving proposals into the entry until it is full or
// lingerFor has passed.
func (b *batcher) linger(add func(*proposal), full func() bool) {
	t := b.lingerTimer
	t.Reset(lingerFor)
	defer t.Stop()
	for !full() {
		select {
		case p := <-b.in:
			add(p)
		case <-t.C:
			return
		case <-b.quit:
			return
		}
	}
}

func (b *batcher) failQueued() {
	for {
		select {
		case p := <-b.in:
			p.done <- proposalResult{err: ErrClosed}
		default:
			return
		}
	}
}

// propose applies one entry carrying props and answers them when it is
// applied, on a goroutine of its own so that the next entry can be
// collected meanwhile.
func (b *batcher) propose(props []*proposal, nbytes int) {
	cmd := make([]byte, 0, nbytes+len(props)*6)
	for _, p := range props {
		cmd = appendCommandField(cmd, p.enc)
	}
	fut := b.raft.Apply(cmd, b.timeout)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := b.wait(fut)
		<-b.inflight
		if err != nil {
			deliver(props, proposalResult{err: translateRaftError(err)})
			return
		}
		switch r := fut.Response().(type) {
		case *applyResponse:
			if len(r.results) != len(props) {
				deliver(props, proposalResult{err: fmt.Errorf("raft: entry %d: %d results for %d appends", fut.Index(), len(r.results), len(props))})
				return
			}
			for i, p := range props {
				p.done <- proposalResult{res: r.results[i].Result, err: r.results[i].Err, head: r.head}
			}
		case error:
			deliver(props, proposalResult{err: r})
		default:
			deliver(props, proposalResult{err: fmt.Errorf("raft: entry %d: unexpected response %T", fut.Index(), r)})
		}
	}()
}

// wait returns fut's error. Raft does not answer a future still queued or
// on its way to the FSM when it shuts down, so once raft has stopped, wait
// gives up with ErrUnknownOutcome, leaving behind the goroutine blocked on
// the future (one per abandoned entry, only after shutdown).
func (b *batcher) wait(fut hraft.ApplyFuture) error {
	errc := make(chan error, 1)
	go func() { errc <- fut.Error() }()
	select {
	case err := <-errc:
		return err
	case <-b.stopped:
		select {
		case err := <-errc:
			return err
		default:
			return fmt.Errorf("%w: the node shut down with the entry in flight: %w", ErrUnknownOutcome, ErrClosed)
		}
	}
}

func deliver(props []*proposal, r proposalResult) {
	for _, p := range props {
		p.done <- r
	}
}

// translateRaftError maps raft's errors onto this package's.
func translateRaftError(err error) error {
	switch {
	case errors.Is(err, hraft.ErrNotLeader):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, hraft.ErrLeadershipLost), errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	case errors.Is(err, hraft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, hraft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	return err
}
