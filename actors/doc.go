// Package actors hosts Logbook's event-sourced entities (units, processes,
// releases, channels) on protoactor-go. Each entity is an actor whose state
// is rebuilt from its own stream in the event log; its behaviour is a Kind:
// a pure Decide and Evolve, one package per aggregate under actors/.
//
// A Host spawns an entity on its first command, recovers it from its latest
// snapshot plus the tail of its stream, handles its commands one at a time
// (decide, append expecting the current version, evolve, reply), saves a
// snapshot every N events, and passivates it after an idle timeout.
// Persistence goes through events.Store, never protoactor's persistence
// plugin, so that a failed or conflicting append fails the command.
//
//	store, err := embedded.Open(ctx, dir)
//	...
//	host, err := actors.NewHost(store, actors.WithIdleTimeout(5*time.Minute))
//	...
//	defer host.Close() // before store.Close
//	if err := host.Register(unit.Kind); err != nil { ... }
//	res, err := host.Execute(ctx, "unit-ship1", &logbookv1.RegisterUnit{...},
//		events.Metadata{Principal: "operator:alice"})
//	var refused *actors.RefusedError
//	switch {
//	case errors.Is(err, unit.ErrAlreadyRegistered): // refused by Decide
//	case errors.As(err, &refused): // another refusal; refused.Err says why
//	case errors.Is(err, actors.ErrConflict): // other writers kept winning
//	case err != nil: // append failed, ErrClosed, ctx ended, ...
//	default:
//		fmt.Println(res.Version, res.Appended.LastPosition, res.State)
//	}
package actors
