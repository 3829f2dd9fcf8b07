package api

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors/process"
	"github.com/logbook-fleet/logbook/projections/readmodel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

// processService implements logbookv1connect.ProcessServiceHandler.
type processService struct{ s *Server }

func (p processService) ListProcesses(ctx context.Context, req *connect.Request[logbookv1.ListProcessesRequest]) (*connect.Response[logbookv1.ListProcessesResponse], error) {
	if _, err := unitStream(req.Msg.GetUnit()); err != nil {
		return nil, err
	}
	procs, err := readmodel.ProcessesOfUnit(ctx, p.s.d.Models, req.Msg.GetUnit())
	if err != nil {
		return nil, p.s.modelError(readmodel.ProcessesName, err)
	}
	out := &logbookv1.ListProcessesResponse{Processes: make([]*logbookv1.ProcessSummary, len(procs))}
	for i, x := range procs {
		out.Processes[i] = &logbookv1.ProcessSummary{
			Unit:           x.Unit,
			Method:         x.Method,
			Domain:         x.Domain,
			DesiredStatus:  x.DesiredStatus,
			RestartPolicy:  x.RestartPolicy,
			Config:         x.Config,
			ConfigRevision: x.ConfigRevision,
			ReportedStatus: x.ReportedStatus,
			RestartCount:   x.RestartCount,
			ExitCode:       x.ExitCode,
			Detail:         x.Detail,
			ReportedAt:     timestamp(x.ReportedAt),
			Position:       x.Position,
		}
	}
	return connect.NewResponse(out), nil
}

// processStream validates a process's unit, method and domain.
func processStream(unitName, method, domain string) (string, error) {
	if _, err := unitStream(unitName); err != nil {
		return "", err
	}
	if method == "" || domain == "" {
		return "", invalidf("method and domain: required (e.g. method \"syslogforwarding\", domain \"nginx\")")
	}
	stream, err := process.StreamName(unitName, method, domain)
	if err != nil {
		return "", invalidf("%v: method and domain are single subject tokens (no dots, spaces or wildcards)", err)
	}
	return stream, nil
}

func (p processService) GetProcess(ctx context.Context, req *connect.Request[logbookv1.GetProcessRequest]) (*connect.Response[logbookv1.GetProcessResponse], error) {
	m := req.Msg
	stream, err := processStream(m.GetUnit(), m.GetMethod(), m.GetDomain())
	if err != nil {
		return nil, err
	}
	res, err := p.s.d.Host.Read(ctx, stream)
	if err != nil {
		return nil, err
	}
	if res.Version == 0 {
		return nil, notFoundf("unit %s has no process %s.%s (see ListProcesses)", m.GetUnit(), m.GetMethod(), m.GetDomain())
	}
	return connect.NewResponse(&logbookv1.GetProcessResponse{State: res.State.(*logbookv1.ProcessState), Version: res.Version}), nil
}

func (p processService) SetProcess(ctx context.Context, req *connect.Request[logbookv1.SetProcessRequest]) (*connect.Response[logbookv1.SetProcessResponse], error) {
	m := req.Msg
	stream, err := processStream(m.GetUnit(), m.GetMethod(), m.GetDomain())
	if err != nil {
		return nil, err
	}
	var cmds []proto.Message
	switch st := m.GetDesiredStatus(); st {
	case logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_UNSPECIFIED:
	case logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_RUNNING, logbookv1.ProcessDesiredStatus_PROCESS_DESIRED_STATUS_STOPPED:
		cmds = append(cmds, &logbookv1.SetProcessDesiredStatus{Status: st})
	default:
		return nil, invalidf("desired_status %v: want RUNNING or STOPPED", st)
	}
	switch pol := m.GetRestartPolicy(); pol {
	case logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_UNSPECIFIED:
	case logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_ALWAYS, logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_ON_FAILURE,
		logbookv1.ProcessRestartPolicy_PROCESS_RESTART_POLICY_NEVER:
		cmds = append(cmds, &logbookv1.SetProcessRestartPolicy{Policy: pol})
	default:
		return nil, invalidf("restart_policy %v: want ALWAYS, ON_FAILURE or NEVER", pol)
	}
	if m.GetSetConfig() {
		if err := process.ValidateConfig(m.GetConfig()); err != nil {
			return nil, invalidf("config: %v", err)
		}
		cmds = append(cmds, &logbookv1.ConfigureProcess{Config: m.GetConfig()})
	} else if len(m.GetConfig()) > 0 {
		return nil, invalidf("config: set set_config to replace the process's config")
	}
	if len(cmds) == 0 {
		return nil, invalidf("nothing to set: give desired_status, restart_policy or config with set_config")
	}
	// The process entity does not know its unit: check it here.
	if _, err := p.s.activeUnit(ctx, m.GetUnit()); err != nil {
		return nil, err
	}
	var out *logbookv1.Appended
	for _, c := range cmds {
		res, err := p.s.execute(ctx, stream, c)
		if err != nil {
			return nil, err
		}
		out = merge(out, res)
	}
	return connect.NewResponse(&logbookv1.SetProcessResponse{Appended: out}), nil
}
