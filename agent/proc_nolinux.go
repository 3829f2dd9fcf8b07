//go:build !linux

package agent

import "errors"

var errNoProcess = errors.New("no such process")

func processStartTime(int) (uint64, error) { return 0, errNoProcInfo }

func groupMembers(int) ([]int, error) { return nil, errNoProcInfo }

func markedProcesses(string, map[string]pidRecord) (map[int]pidRecord, error) {
	return nil, errNoProcInfo
}

func killProcess(int) error { return errNoProcInfo }
