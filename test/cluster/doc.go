// Package cluster holds real-process fault tests of the clustered log
// (cluster/raft): three node processes (clusternode) on loopback, killed
// with SIGKILL under load and restarted, then checked for every
// acknowledged append on every node exactly once, at the same head.
//
//	go test ./test/cluster                       # 3 leader kills (about 30 s)
//	LOGBOOK_CLUSTER_LONG=1 go test ./test/cluster # 20 leader kills
package cluster
