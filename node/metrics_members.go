package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/georaft/georaft/raft"
)

// membershipMetrics are the series of membership changes and member health.
type membershipMetrics struct {
	members *prometheus.GaugeVec
	changes *prometheus.CounterVec
	healthy *prometheus.GaugeVec
	contact *prometheus.GaugeVec
	// autoRemovals counts cluster.auto_remove_after's removals.
	autoRemovals prometheus.Counter
}

func newMembershipMetrics(reg *prometheus.Registry, constLabels prometheus.Labels) *membershipMetrics {
	m := &membershipMetrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "georaft_members", Help: "Members of the cluster as this node has applied it, by role (voter, learner, outgoing: voters being replaced while a change is under way).", ConstLabels: constLabels,
		}, []string{"role"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "georaft_membership_changes_total", Help: "Membership changes this node proposed as leader and saw applied, by kind (add-learner, promote, remove, promote+remove for a replace); self-removed when this member applied its own removal.", ConstLabels: constLabels,
		}, []string{"kind"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "georaft_member_healthy", Help: "Leader only: 1 for a member heard from within cluster.last_contact_threshold, 0 for one that was not.", ConstLabels: constLabels,
		}, []string{"member"}),
		autoRemovals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "georaft_member_auto_removals_total", Help: "Members this node removed as leader because it had not heard from them for cluster.auto_remove_after (off by default).", ConstLabels: constLabels,
		}),
		contact: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "georaft_member_last_contact_seconds", Help: "Leader only: time since the leader last heard from each member.", ConstLabels: constLabels,
		}, []string{"member"}),
	}
	reg.MustRegister(m.members, m.changes, m.healthy, m.contact, m.autoRemovals)
	return m
}

func (n *Node) observeMembers(v *memberView) {
	mm := n.m.membership
	mm.members.WithLabelValues("voter").Set(float64(len(v.conf.Voters)))
	mm.members.WithLabelValues("learner").Set(float64(len(v.conf.Learners)))
	mm.members.WithLabelValues("outgoing").Set(float64(len(v.conf.VotersOutgoing)))
}

// observeMemberHealth refreshes the health series from the leader's status; a node that
// does not lead exports none, so that only the leader's judgement is on a dashboard.
func (n *Node) observeMemberHealth(st *raft.Status) {
	mm := n.m.membership
	mm.healthy.Reset()
	mm.contact.Reset()
	if st.Role != raft.Leader {
		return
	}
	for _, id := range n.members().ids() {
		h := n.memberHealth(st, id)
		label := strconv.FormatUint(id, 10)
		v := 0.0
		if h.GetHealthy() {
			v = 1
		}
		mm.healthy.WithLabelValues(label).Set(v)
		if age := h.GetLastContactAgeNanos(); age >= 0 {
			mm.contact.WithLabelValues(label).Set(float64(age) / 1e9)
		}
	}
}
