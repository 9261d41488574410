// Package compare is `make bench-compare`: a 5-node georaft cluster and a 5-member etcd
// cluster measured side by side by the same load generator (client/bench), with fsync on,
// first on plain loopback and then behind the 5-region RTT matrix, and a table of
// georaft ÷ etcd ratios for throughput, p50 and p99 per workload.
//
// The emulation is per pair of nodes for both systems and uses the same link delays
// (clusterkit.LinkModel):
//   - georaft dials every peer at its own toxiproxy proxy (the lab's port plan), so its
//     nodes stay on loopback;
//   - etcd advertises one peer URL per member, so each member runs in its own network
//     namespace on a bridge, with an advertised address and a back-door address; in member
//     A's namespace an iptables DNAT rule sends traffic for B's advertised peer URL to the
//     proxy of link A→B, which forwards to B's back door. Members listen for peers only on
//     the back door, so a missing rule is a refused connection, never an undelayed link.
//
// See docs/compare.md.
package compare
