package channel_test

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/logbook-fleet/logbook/actors"
	"github.com/logbook-fleet/logbook/actors/channel"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func Example() {
	env := actors.Env{Now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Principal: "alice"}
	s := channel.New("stable")
	// handle decides cmd and folds the events, as the entity host does.
	handle := func(cmd proto.Message) error {
		evs, err := channel.Decide(s, cmd, env)
		for _, e := range evs {
			s = channel.Evolve(s, e)
		}
		return err
	}
	// The API layer reads the release entity and fills the facts.
	published := func(v string) *logbookv1.ChannelReleaseFacts {
		return &logbookv1.ChannelReleaseFacts{Version: v, Published: true}
	}

	_ = handle(&logbookv1.CreateChannel{Description: "what most units run"})
	_ = handle(&logbookv1.PromoteRelease{Version: "2026.11.2", Reason: "soak passed", Release: published("2026.11.2")})
	_ = handle(&logbookv1.PromoteRelease{Version: "2026.11.3", Reason: "soak passed", Release: published("2026.11.3")})
	fmt.Println("current:", channel.CurrentVersion(s))

	to, _ := channel.RollbackTarget(s)
	_ = handle(&logbookv1.RollbackChannel{Reason: "error rate up", Target: published(to)})
	fmt.Println("after rollback:", channel.CurrentVersion(s))

	err := handle(&logbookv1.PromoteRelease{Version: "2026.11.3", Reason: "retry",
		Release: &logbookv1.ChannelReleaseFacts{Version: "2026.11.3", Published: true, Yanked: true}})
	fmt.Println("yanked refused:", errors.Is(err, channel.ErrYankedRelease))
	fmt.Println(err)
	// Output:
	// current: 2026.11.3
	// after rollback: 2026.11.2
	// yanked refused: true
	// channel stable: cannot promote: release is yanked: 2026.11.3
}
