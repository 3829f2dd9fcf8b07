package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	for run := 1; run <= 2; run++ { // the second run reuses the log
		var out bytes.Buffer
		if err := Run(context.Background(), []string{"demo", "--dir", dir}, &out, &out); err != nil {
			t.Fatalf("run %d: demo: %v\n%s", run, err, out.String())
		}
		for _, want := range []string{"unit-ship1", "rejected", "actual version", "original result", "head hash", "verify: ok"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("run %d: output lacks %q:\n%s", run, want, out.String())
			}
		}
		t.Logf("run %d:\n%s", run, out.String())
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"demo", "--help"}} {
		var out bytes.Buffer
		if err := Run(context.Background(), args, &out, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(out.String(), "demo") || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%v: help lacks usage:\n%s", args, out.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"nonsense"}, &out, &out); err == nil {
		t.Fatal("unknown command: want an error")
	}
}
