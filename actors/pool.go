package actors

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// mailboxThroughput is how many messages a mailbox handles before it lets
// other goroutines run (protoactor's default).
const mailboxThroughput = 300

// poolIdle is how long a mailbox worker waits for more work before it
// exits.
const poolIdle = 10 * time.Second

// workerPool is the protoactor dispatcher of a host's entities: it runs
// each mailbox's processing on a goroutine kept from earlier runs instead
// of a new one (protoactor's default dispatcher says "go fn()").
//
// Why: an entity handles a command on a deep stack (decide, protobuf,
// the store's append). A fresh goroutine starts with a small stack and
// grows it by copying, several times per command; with thousands of
// entities each receiving a command every few hundred milliseconds that
// copying was a tenth of the process's CPU under the command-rtt load,
// and allocation churn for the GC. A worker that ran an entity before
// already has the stack.
//
// The pool never bounds concurrency: when no worker is idle, Schedule
// starts another, because an entity blocks in the store's append and
// many appends in flight are what lets the store batch them under one
// sync. Idle workers exit after poolIdle, so a burst does not leave
// thousands of goroutines behind.
type workerPool struct {
	// work hands a function to an idle worker; unbuffered, so a send
	// succeeds only when a worker is waiting for it.
	work chan func()
	// stop, closed by close, makes idle workers exit at once.
	stop     chan struct{}
	stopOnce sync.Once
}

var _ actor.Dispatcher = (*workerPool)(nil)

func newWorkerPool() *workerPool {
	return &workerPool{work: make(chan func()), stop: make(chan struct{})}
}

// close lets idle workers exit now rather than after poolIdle; busy ones
// exit when they finish. Schedule still works after it (a late
// protoactor system message runs on a fresh goroutine that exits after
// it).
func (p *workerPool) close() { p.stopOnce.Do(func() { close(p.stop) }) }

// Schedule implements actor.Dispatcher.
func (p *workerPool) Schedule(fn func()) {
	select {
	case p.work <- fn:
	default:
		go p.worker(fn)
	}
}

// Throughput implements actor.Dispatcher.
func (p *workerPool) Throughput() int { return mailboxThroughput }

func (p *workerPool) worker(fn func()) {
	idle := time.NewTimer(poolIdle)
	defer idle.Stop()
	for {
		fn()
		fn = nil // do not keep the mailbox reachable while idle
		idle.Reset(poolIdle)
		select {
		case fn = <-p.work:
		case <-idle.C:
			return
		case <-p.stop:
			return
		}
	}
}
