package process_test

import (
	"fmt"
	"time"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/process"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func Example() {
	stream, _ := process.StreamName("ship1", "syslogforwarding", "nginx")
	fmt.Println(stream)

	s := process.New("ship1.syslogforwarding.nginx")
	env := actors.Env{Now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), Principal: "alice"}
	evs, err := process.Decide(s, &logbookv1.SetProcessDesiredStatus{
		Status: logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_RUNNING,
	}, env)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range evs {
		s = process.Evolve(s, e)
	}
	fmt.Println(s.GetDesiredStatus())

	_, err = process.Decide(s, &logbookv1.SetProcessRestartPolicy{}, env)
	fmt.Println(err)
	// Output:
	// process-ship1.syslogforwarding.nginx
	// PROCESS_DESIRED_STATUS_RUNNING
	// process ship1.syslogforwarding.nginx: invalid restart policy: PROCESS_RESTART_POLICY_UNSPECIFIED
}
