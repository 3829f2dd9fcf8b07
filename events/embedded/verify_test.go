package embedded

import (
	"context"
	"testing"

	"github.com/logbook-fleet/logbook/events"
)

func TestVerifyProgressReportsVerifiedHeads(t *testing.T) {
	s := mustOpen(t, "mem", InMemory())
	defer s.Close()
	fill(t, s, 600)
	var seen []events.Head
	head, err := s.VerifyProgress(context.Background(), func(h events.Head) { seen = append(seen, h) })
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Head(context.Background())
	if err != nil || head != want {
		t.Fatalf("VerifyProgress = %+v, want the head %+v (%v)", head, want, err)
	}
	if len(seen) == 0 {
		t.Fatal("progress never called")
	}
	for i, h := range seen {
		if h.Position == 0 || h.Position > head.Position || i > 0 && h.Position <= seen[i-1].Position {
			t.Fatalf("progress reports %+v", seen)
		}
	}
}
