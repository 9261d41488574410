// Package lab runs georaft clusters on one machine: a local five-node cluster on loopback
// ports, and an emulated five-region cluster whose every directed link goes through its own
// toxiproxy proxy with half the region pair's round-trip time on each direction. It also
// drives `make bench`: bring the emulated cluster up, pin the leader to us-central1, run the
// benchmark from two client regions and print each measured p50 beside what the RTT matrix
// predicts.
//
// The clusters are the cluster kit's (package clusterkit), run detached: each process in its
// own session with a PID file, so that it outlives the command that started it, and stopped
// only after its /proc/PID/cmdline shows it is still the process that PID file names.
package lab
