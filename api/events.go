package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/events"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// eventService serves the log itself: reads, live follow, head and the
// hash-chain check.
type eventService struct{ s *Server }

// ReadStream returns up to limit events of one stream from from_version
// (1 when 0), oldest first. A stream with no events is NotFound.
func (e eventService) ReadStream(ctx context.Context, req *connect.Request[logbookv1.ReadStreamRequest]) (*connect.Response[logbookv1.ReadStreamResponse], error) {
	m := req.Msg
	if err := checkStream("stream", m.GetStream()); err != nil {
		return nil, err
	}
	limit, err := pageLimit(m.GetLimit())
	if err != nil {
		return nil, err
	}
	out := &logbookv1.ReadStreamResponse{}
	for ev, err := range e.s.d.Store.ReadStream(ctx, m.GetStream(), max(m.GetFromVersion(), 1)) {
		if errors.Is(err, events.ErrStreamNotFound) {
			return nil, notFoundf("stream %s has no events", m.GetStream())
		}
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", m.GetStream(), err)
		}
		out.Events = append(out.Events, events.ToProto(ev))
		if len(out.Events) == limit {
			break
		}
	}
	return connect.NewResponse(out), nil
}

// ReadAll returns up to limit events of the whole log from from_position
// (1 when 0) that match the category and type filters, oldest first, and
// the position to read from next: after the last event returned when the
// page is full, else past the head of the log the read saw.
func (e eventService) ReadAll(ctx context.Context, req *connect.Request[logbookv1.ReadAllRequest]) (*connect.Response[logbookv1.ReadAllResponse], error) {
	m := req.Msg
	filter, err := eventFilter(m.GetCategories(), m.GetTypes())
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(m.GetLimit())
	if err != nil {
		return nil, err
	}
	head, err := e.s.d.Store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("read head: %w", err)
	}
	from := max(m.GetFromPosition(), 1)
	out := &logbookv1.ReadAllResponse{Next: max(from, head.Position+1)}
	for ev, err := range e.s.d.Store.ReadAll(ctx, from, filter) {
		if err != nil {
			return nil, fmt.Errorf("read the log from position %d: %w", from, err)
		}
		out.Events = append(out.Events, events.ToProto(ev))
		if len(out.Events) == limit {
			out.Next = ev.Position + 1
			break
		}
		out.Next = max(out.Next, ev.Position+1)
	}
	return connect.NewResponse(out), nil
}

// Follow streams the events from from_position (only new ones when 0)
// that are of stream, or match the category and type filters: first
// those already in the log, then each new one once it is durable, with no
// gap and no duplicate. The response headers are sent at once, so the
// call returns when the server has fixed its start (the head, for 0). It
// ends when the client goes away.
func (e eventService) Follow(ctx context.Context, req *connect.Request[logbookv1.FollowRequest], stream *connect.ServerStream[logbookv1.FollowResponse]) error {
	m := req.Msg
	filter, err := eventFilter(m.GetCategories(), m.GetTypes())
	if err != nil {
		return err
	}
	if name := m.GetStream(); name != "" {
		if len(m.GetCategories()) > 0 {
			return invalidf("stream and categories: give one or the other")
		}
		if err := checkStream("stream", name); err != nil {
			return err
		}
		filter.Categories = []string{events.Category(name)}
	}
	from := m.GetFromPosition()
	if from == 0 {
		head, err := e.s.d.Store.Head(ctx)
		if err != nil {
			return fmt.Errorf("read head: %w", err)
		}
		from = head.Position + 1
	}
	// Send the headers now: once the client's call returns, every event
	// appended from then on is delivered.
	if err := stream.Send(nil); err != nil {
		return err
	}
	for ev, err := range e.s.d.Store.Subscribe(ctx, from, filter) {
		if err != nil {
			if ctx.Err() != nil {
				return nil // the client went away
			}
			return fmt.Errorf("follow the log from position %d: %w", from, err)
		}
		if m.GetStream() != "" && ev.Stream != m.GetStream() {
			continue
		}
		if err := stream.Send(&logbookv1.FollowResponse{Event: events.ToProto(ev)}); err != nil {
			return err
		}
	}
	return nil
}

// Head returns the position and hash of the last durable event.
func (e eventService) Head(ctx context.Context, req *connect.Request[logbookv1.HeadRequest]) (*connect.Response[logbookv1.HeadResponse], error) {
	head, err := e.s.d.Store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("read head: %w", err)
	}
	return connect.NewResponse(&logbookv1.HeadResponse{Position: head.Position, Hash: headHash(head)}), nil
}

// progressVerifier is a store whose Verify reports its progress
// (events/embedded does). Others are verified without progress messages.
type progressVerifier interface {
	VerifyProgress(ctx context.Context, progress func(verified events.Head)) (events.Head, error)
}

// verifyProgressEvery is the least time between two progress messages of
// Verify.
const verifyProgressEvery = 250 * time.Millisecond

// Verify checks the whole log (frames, dense positions, the hash chain)
// and streams progress: a first message with the head, progress messages
// while it verifies, then one with done set, and ok or the error and the
// first bad position. A broken chain is a result, not a call error.
func (e eventService) Verify(ctx context.Context, req *connect.Request[logbookv1.VerifyRequest], stream *connect.ServerStream[logbookv1.VerifyResponse]) error {
	store := e.s.d.Store
	head, err := store.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	if err := stream.Send(&logbookv1.VerifyResponse{Head: head.Position}); err != nil {
		return err
	}
	var verified events.Head
	if pv, ok := store.(progressVerifier); ok {
		vctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var sendErr error
		last := time.Now()
		verified, err = pv.VerifyProgress(vctx, func(h events.Head) {
			if sendErr != nil || time.Since(last) < verifyProgressEvery {
				return
			}
			last = time.Now()
			if sendErr = stream.Send(&logbookv1.VerifyResponse{Position: h.Position, Head: max(head.Position, h.Position)}); sendErr != nil {
				cancel()
			}
		})
		if sendErr != nil {
			return sendErr
		}
	} else {
		verified, err = store.Verify(ctx)
	}
	final := &logbookv1.VerifyResponse{Position: verified.Position, Head: max(head.Position, verified.Position), Done: true, Ok: err == nil}
	if ce := new(events.CorruptionError); errors.As(err, &ce) {
		final.Error, final.BadPosition = ce.Error(), ce.Position
	} else if err != nil {
		return fmt.Errorf("verify the log: %w", err)
	}
	return stream.Send(final)
}

// headHash returns the hash of head, nil for an empty log.
func headHash(head events.Head) []byte {
	if head.Position == 0 {
		return nil
	}
	return head.Hash[:]
}

// checkStream validates a stream name given in field.
func checkStream(field, name string) error {
	if name == "" {
		return invalidf("%s: required, a stream name such as unit-ship1", field)
	}
	if err := events.ValidateStream(name); err != nil {
		return invalidf("%s: %v", field, err)
	}
	return nil
}

// eventFilter validates category and type filters.
func eventFilter(categories, types []string) (events.Filter, error) {
	for _, c := range categories {
		if _, _, err := events.SplitStream(c + "-x"); err != nil || strings.Contains(c, "-") {
			return events.Filter{}, invalidf("categories: %q is not a stream category (lowercase letters and digits, starting with a letter, e.g. unit)", c)
		}
	}
	for _, t := range types {
		if t == "" || strings.ContainsAny(t, " \t\n") {
			return events.Filter{}, invalidf("types: %q is not a payload type (a protobuf full name, e.g. logbook.v1.UnitRegistered)", t)
		}
	}
	return events.Filter{Categories: categories, Types: types}, nil
}
