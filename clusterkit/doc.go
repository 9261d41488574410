// Package clusterkit runs georaft clusters on one machine, for every harness: the client's
// and the node's integration tests, the lab (make local-up, geo-up, bench), the chaos
// harness and the comparison with etcd.
//
// A cluster is a directory of node configs, written and read through node/config's own
// types (WriteConfigs, LoadConfigs), plus the processes that run them and the links between
// them:
//
//   - Spec describes a cluster to generate: its size and regions, its ports (a fixed plan
//     or free ones), whether every peer link i→j and every client region's link to a node
//     goes through its own proxy, its timing, TLS, and a per-node override of anything in
//     the config. New writes it and opens it; Open opens a directory that exists (the
//     lab's committed configs).
//   - Processes (StartProcess) are attached (they die with the harness, and an exit
//     nobody asked for is reported as a crash) or detached (they outlive it, with a PID
//     file, and are stopped later by it, only while /proc shows the same command).
//   - Links are toxiproxy proxies (Proxies) running in the harness, or in a process of
//     their own (ProxyProcess); each can be delayed (LinkModel, SetRTT), cut, slowed,
//     throttled and healed on its own.
//   - Cluster starts, kills (kill -9), terminates (SIGTERM), pauses (SIGSTOP) and resumes
//     nodes, adds and removes members, asks every node for its status over direct
//     connections no fault touches, and waits with deadlines: for a leader (WaitLeader),
//     for a given node to lead (PinLeader), or for any condition (WaitFor).
//
// Package kittest wraps it for tests: build georaftd once, start a cluster that is torn
// down when the test ends and shows its nodes' logs when it failed.
package clusterkit
