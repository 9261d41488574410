// Package chaos is georaft's fault-injection harness on real processes: five georaftd
// processes built with the georaft_testhooks tag, real data directories, and every peer link
// i→j and every client→node link through its own in-process toxiproxy proxy, so faults can be
// set per directed link.
//
// A run starts the cluster, drives it with concurrent clients that record every operation
// in a history (package history), and injects a seeded, rotating schedule of faults: kill -9
// of the leader or followers, SIGSTOP/SIGCONT past the lease, symmetric, one-way, leader,
// majority/minority and bridge partitions, latency spikes, bandwidth limits, and restarts
// with a skewed clock rate inside the configured drift bound. After the faults it heals
// everything and checks:
//
//   - porcupine finds the writes and the lease, index and log reads linearizable, and every
//     stale read returned a value really written, recently enough;
//   - every acknowledged write survives a kill -9 of the whole cluster (read back through
//     the log, judged by per-key write order: a later write with an unknown outcome may
//     legitimately have replaced it);
//   - all nodes converge to the same state hash at the same applied index;
//   - after each fault heals, writes succeed again within a bound derived from the timing.
//
// Any anomaly leaves porcupine's HTML visualization, the history and the seed with the full
// fault schedule in an artifacts directory, with the one command that replays it.
package chaos
