// Package process is the Process aggregate: one process (a method for a
// domain, e.g. syslogforwarding for nginx) that the agent of one unit
// supervises, in stream "process-<unit>.<method>.<domain>" (see StreamName
// and ParseStreamName). Its pure Decide and Evolve run in the entity host as
// Kind.
//
// The control plane sets the desired side (SetProcessDesiredStatus,
// SetProcessRestartPolicy, ConfigureProcess, each recording who and when);
// the agent reports the observed side (ReportProcessStatus: status, restart
// count, exit code, detail). A process needs no creation; its first command
// creates it. A command that would change nothing yields no events; refusals
// wrap a sentinel of this package and start with "process <id>: ".
//
// Decide does not know whether the unit exists: callers check that the unit
// is registered and not decommissioned before sending commands.
//
// Example:
//
//	stream, err := process.StreamName("ship1", "syslogforwarding", "nginx")
//	// stream == "process-ship1.syslogforwarding.nginx"
//	s := process.New("ship1.syslogforwarding.nginx")
//	evs, err := process.Decide(s, &logbookv1.SetProcessDesiredStatus{
//		Status: logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_RUNNING,
//	}, actors.Env{Now: time.Now(), Principal: "alice"})
//	for _, e := range evs {
//		s = process.Evolve(s, e)
//	}
package process
