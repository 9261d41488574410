package node

import "time"

// Test-only access to the node's internals, for the tests in package node_test.

// Outbox is the loop's outbound edge.
type Outbox = outbox

// SetTestingWrapOutbox makes every node started from now on send through f's wrapper of its
// transport. It returns the function that undoes it.
func SetTestingWrapOutbox(f func(*Node, Outbox) Outbox) (undo func()) {
	old := testingWrapOutbox
	testingWrapOutbox = f
	return func() { testingWrapOutbox = old }
}

// SetTestingPublishAfterSend turns the publish-before-send off (the knob of its test).
func SetTestingPublishAfterSend(on bool) (undo func()) {
	old := testingPublishAfterSend
	testingPublishAfterSend = on
	return func() { testingPublishAfterSend = old }
}

// PublishedLeaseUntil is the end of the lease that lease reads are served on right now, on
// the node's clock; 0 when none is published.
func (n *Node) PublishedLeaseUntil() time.Duration { return n.view.Load().LeaseUntil }

// SetTestingClockStopsInSuspend makes nodes started from now on behave as on a platform whose
// clock may stop while the machine sleeps (clock_other.go).
func SetTestingClockStopsInSuspend(on bool) (undo func()) {
	old := testingClockStopsInSuspend
	testingClockStopsInSuspend = on
	return func() { testingClockStopsInSuspend = old }
}

// PeerConnectionBudget is the peer port's connection cap for a cluster created with members
// members.
func PeerConnectionBudget(members int) int {
	return peerConnectionsPerPeer * (members + membersAddedHeadroom)
}
