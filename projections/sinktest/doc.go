// Package sinktest is the conformance suite every projections.Sink runs,
// and the crash test that kills a runner process mid-batch.
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, sinktest.Config{NewSink: newSink, NewStore: newStore})
//	}
//
//	func TestCrash(t *testing.T) {
//		sinktest.RunCrash(t, sinktest.CrashConfig{SinkURL: url, ChildTest: "TestCrashChild", OpenStore: openStore})
//	}
//	func TestCrashChild(t *testing.T) { sinktest.CrashChild(t, openStore) }
//
// The suite's read model is the counter projection (Counter): per stream
// the number of events and the sum of their values, and one row per event.
// Checks compare it with a fold of the log (FoldLog, ReadFold), so a lost
// batch and a doubled one both show.
package sinktest
