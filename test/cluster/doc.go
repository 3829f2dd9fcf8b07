// Package cluster holds real-process fault tests of the clustered log
// (cluster/raft): three node processes (clusternode) on loopback, under a
// steady append load through their HTTP ports, then checked for every
// acknowledged append on every node exactly once, at the same verified
// head.
//
//   - TestKillLeaderProcesses kills the leader with SIGKILL, again and
//     again, and restarts it.
//   - TestIsolateLeaderProcesses cuts the leader off from the others and
//     heals it: each node dials its peers through one proxy per link, in
//     the test process, which the test can cut.
//   - TestRestartFollowerAfterCompaction restarts a follower after the
//     others compacted their raft logs past it, so that it catches up
//     from a raft snapshot.
//
// The three take about 20 s in all on an idle machine:
//
//	go test ./test/cluster                       # 3 leader kills
//	LOGBOOK_CLUSTER_LONG=1 go test ./test/cluster # 20 leader kills
package cluster
