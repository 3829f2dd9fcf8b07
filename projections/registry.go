package projections

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// OpenFunc opens a sink from its URL.
type OpenFunc func(ctx context.Context, u *url.URL) (Sink, error)

var (
	sinksMu sync.RWMutex
	sinks   = map[string]OpenFunc{}
)

// RegisterSink makes a sink available to OpenSink under the URL scheme.
// Sink packages call it from init; projections/sinks imports them all.
// Registering a scheme twice panics.
func RegisterSink(scheme string, open OpenFunc) {
	sinksMu.Lock()
	defer sinksMu.Unlock()
	if _, dup := sinks[scheme]; dup {
		panic("projections: sink scheme " + scheme + " registered twice")
	}
	sinks[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	sinksMu.RLock()
	defer sinksMu.RUnlock()
	s := make([]string, 0, len(sinks))
	for k := range sinks {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// OpenSink opens the sink its URL names by scheme, e.g.
// "sqlite:///var/lib/logbook/read.db", "sqlite::memory:",
// "postgres://user@host/db". An unknown scheme gives ErrUnknownScheme
// (naming the known ones), an unparsable URL ErrBadURL.
func OpenSink(ctx context.Context, rawURL string) (Sink, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w %q: no scheme (want e.g. sqlite:///path/file.db or postgres://host/db)", ErrBadURL, redact(u))
	}
	sinksMu.RLock()
	open, ok := sinks[strings.ToLower(u.Scheme)]
	sinksMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s; is projections/sinks imported?)", ErrUnknownScheme, u.Scheme, strings.Join(Schemes(), ", "))
	}
	return open(ctx, u)
}

func redact(u *url.URL) string { return u.Redacted() }
