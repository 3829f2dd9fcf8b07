package logbookv1

import (
	"crypto/ed25519"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestCommandSignature(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &EdgeCommand{Unit: "ship1", CommandId: "c1", Method: "shellcommand", Domain: "uptime",
		Args: []string{"-p"}, Deadline: timestamppb.New(time.Unix(1700000000, 5))}
	c.Sign(priv)
	if !c.VerifySignature(pub) {
		t.Fatal("a fresh signature does not verify")
	}
	for name, forge := range map[string]func(*EdgeCommand){
		"unit":     func(c *EdgeCommand) { c.Unit = "ship2" },
		"id":       func(c *EdgeCommand) { c.CommandId = "c2" },
		"method":   func(c *EdgeCommand) { c.Method = "config" },
		"domain":   func(c *EdgeCommand) { c.Domain = "reboot" },
		"args":     func(c *EdgeCommand) { c.Args = []string{"-p", "x"} },
		"argsplit": func(c *EdgeCommand) { c.Args = []string{"", "-p"} },
		"payload":  func(c *EdgeCommand) { c.Payload = []byte("x") },
		"deadline": func(c *EdgeCommand) { c.Deadline = timestamppb.New(time.Unix(1700000001, 5)) },
		"unsigned": func(c *EdgeCommand) { c.Signature = nil },
	} {
		f := &EdgeCommand{}
		*f = EdgeCommand{Unit: c.Unit, CommandId: c.CommandId, Method: c.Method, Domain: c.Domain,
			Args: append([]string(nil), c.Args...), Deadline: c.Deadline, KeyId: c.KeyId, Signature: c.Signature}
		forge(f)
		if f.VerifySignature(pub) {
			t.Errorf("changing %s kept the signature valid", name)
		}
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if c.VerifySignature(other) {
		t.Error("signature verifies with another key")
	}
}
