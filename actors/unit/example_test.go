package unit_test

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/unit"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func Example() {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	env := actors.Env{Now: now, Principal: "alice"}
	s := unit.New("ship1")
	for _, cmd := range []proto.Message{
		&logbookv1.RegisterUnit{Platform: "linux/arm64"},
		&logbookv1.AssignUnitChannel{Channel: "stable", Facts: &logbookv1.UnitChannelFacts{
			Name: "stable", Exists: true, CurrentRelease: "2026.11.1",
		}},
		&logbookv1.IssueUnitCommand{
			CommandId: "0193f1c2-7e4b-7c3a-9d2e-5b6a7c8d9e0f", Method: "shellcommand", Domain: "operatingsystem",
			Args: []string{"uptime"}, Deadline: timestamppb.New(now.Add(time.Hour)),
		},
	} {
		evs, err := unit.Decide(s, cmd, env)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, e := range evs {
			fmt.Println(e.ProtoReflect().Descriptor().Name())
			s = unit.Evolve(s, e)
		}
	}
	fmt.Println("desired:", s.GetDesiredRelease(), "pending:", len(s.GetPending()))

	_, err := unit.Decide(s, &logbookv1.RegisterUnit{}, env)
	fmt.Println(err)
	// Output:
	// UnitRegistered
	// UnitChannelAssigned
	// UnitDesiredReleaseChanged
	// UnitCommandIssued
	// desired: 2026.11.1 pending: 1
	// unit ship1: unit already registered at 2026-11-22T12:00:00Z by alice
}
