package bridge_test

import (
	"errors"
	"fmt"

	"github.com/logbook-fleet/logbook/cluster/bridge"
)

func ExampleParseSubject() {
	s, err := bridge.ParseSubject("ship1.event.syslogforwarding.nginx")
	fmt.Println(s.Unit, s.Kind, s.Method, s.Domain, err)

	cmd, _ := bridge.CommandSubject("ship2", "shellcommand", "operatingsystem")
	fmt.Println(cmd, bridge.InboxPrefix("ship2"))

	_, err = bridge.ParseSubject("ship1.event.>")
	fmt.Println(errors.Is(err, bridge.ErrInvalidSubject))
	// Output:
	// ship1 event syslogforwarding nginx <nil>
	// ship2.command.shellcommand.operatingsystem _INBOX_ship2
	// true
}
