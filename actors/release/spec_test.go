package release_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/kindtest"
	"github.com/logbook-fleet/logbook/actors/release"
)

// spec is one given-events / when-command / then-events-or-error case.
type spec struct {
	name  string
	id    string          // entity id; default version
	given []proto.Message // events already in the stream
	when  proto.Message   // the command
	then  []proto.Message // events expected, when errs is empty
	errs  []error         // every one must match errors.Is
}

var (
	now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	env = actors.Env{Now: now, Principal: "alice"}
)

// run checks each case with kindtest.Check.
func run(t *testing.T, specs []spec) {
	t.Helper()
	for _, sp := range specs {
		t.Run(sp.name, func(t *testing.T) {
			id := sp.id
			if id == "" {
				id = version
			}
			kindtest.Check(t, release.Kind, kindtest.Case{ID: id, Env: env, Given: sp.given, When: sp.when, Then: sp.then, Errs: sp.errs})
		})
	}
}

func text(m proto.Message) string { return kindtest.Text(m) }
