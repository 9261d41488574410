package raft

import "testing"

func TestSmokeElectAndReplicate(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	idx, _ := net.propose(1, "x")
	net.stabilize()
	for _, id := range net.ids {
		st := net.raft(id).Status()
		if st.Commit < idx {
			t.Fatalf("node %d commit %d < %d\n%s", id, st.Commit, idx, net.dumpEvents(id))
		}
	}
}
