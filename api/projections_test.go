package api_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"github.com/logbook-fleet/logbook/projections"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func TestRebuildProjectionWhileAppending(t *testing.T) {
	e := newEnv(t)
	c := e.history()
	for i := range 10 {
		e.registerUnit(fmt.Sprintf("before%d", i), nil, "")
	}
	e.waitProjected()

	// Units keep registering and readers keep listing them during the
	// rebuild.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var registered, reads atomic.Int64
	registered.Store(10)
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.units.RegisterUnit(e.ctx, connect.NewRequest(&logbookv1.RegisterUnitRequest{Unit: fmt.Sprintf("during%d", i)})); err != nil {
				t.Errorf("register during the rebuild: %v", err)
				return
			}
			registered.Add(1)
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.units.ListUnits(e.ctx, connect.NewRequest(&logbookv1.ListUnitsRequest{Limit: 1000})); err != nil {
				t.Errorf("list units during the rebuild: %v", err)
				return
			}
			reads.Add(1)
		}
	})

	s, err := c.projections.RebuildProjection(e.ctx, connect.NewRequest(&logbookv1.RebuildProjectionRequest{Name: readmodel.FleetName}))
	if err != nil {
		t.Fatal(err)
	}
	var last *logbookv1.RebuildProjectionResponse
	for s.Receive() {
		last = s.Msg()
	}
	if err := s.Err(); err != nil {
		t.Fatalf("RebuildProjection: %v", err)
	}
	s.Close()
	close(stop)
	wg.Wait()
	if last == nil || !last.Done || last.Status.GetName() != readmodel.FleetName || !last.Status.GetReady() {
		t.Fatalf("last message of RebuildProjection: %v", last)
	}
	if st, _ := e.runner.Status(readmodel.FleetName); st.Generation != readmodel.FleetVersion+projections.GenerationStride {
		t.Fatalf("fleet serves generation %d after the rebuild", st.Generation)
	}

	// The rebuilt read model has every unit.
	e.waitProjected()
	units := try(e.units.ListUnits(e.ctx, connect.NewRequest(&logbookv1.ListUnitsRequest{Limit: 1000}))).must(t).Msg.Units
	if int64(len(units)) != registered.Load() {
		t.Fatalf("%d units listed after the rebuild, %d registered", len(units), registered.Load())
	}
	t.Logf("%d units registered and %d lists served around the rebuild", registered.Load(), reads.Load())

	list := try(c.projections.ListProjections(e.ctx, connect.NewRequest(&logbookv1.ListProjectionsRequest{}))).must(t).Msg
	byName := map[string]*logbookv1.ProjectionStatus{}
	for _, p := range list.Projections {
		byName[p.Name] = p
	}
	for _, name := range []string{readmodel.FleetName, readmodel.AuditName, readmodel.CommandsName} {
		if p := byName[name]; p == nil || !p.Ready || p.State != "live" || p.Version == 0 {
			t.Errorf("ListProjections: %s is %v", name, p)
		}
	}

	for _, tc := range []struct {
		name string
		code connect.Code
		msg  string
	}{
		{"", connect.CodeInvalidArgument, "name: required, one of fleet"},
		{"nope", connect.CodeNotFound, `no read model "nope"; known: fleet`},
	} {
		s, err := c.projections.RebuildProjection(e.ctx, connect.NewRequest(&logbookv1.RebuildProjectionRequest{Name: tc.name}))
		if err == nil {
			for s.Receive() {
			}
			err = s.Err()
			s.Close()
		}
		wantContains(t, wantCode(t, err, tc.code), tc.msg)
	}
}
