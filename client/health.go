package client

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Summary is what the nodes' statuses say about the cluster as a whole.
type Summary struct {
	// Asked is how many endpoints were asked; Reachable how many answered; Serving how many
	// of those have not stopped after a storage failure.
	Asked     int
	Reachable int
	Serving   int
	// Members is the cluster's voters: the endpoints asked, or the voters the nodes list,
	// whichever is more (learners, which count in no quorum, are left out of both). Quorum is
	// a majority of it.
	Members int
	Quorum  int
	// LeaderID and Term are the leader of the highest term any node reports (0: none).
	LeaderID, Term uint64
	// Disagree is set when nodes name different leaders in that term.
	Disagree bool
	// Failed lists nodes that answered but stopped serving after a storage failure.
	Failed []uint64
}

// Summarize reads a set of node statuses (StatusAll's answer).
func Summarize(nodes []NodeStatus) Summary {
	s := Summary{Asked: len(nodes), Members: len(nodes)}
	for _, n := range nodes {
		if n.Status.GetLearner() {
			s.Members--
		}
	}
	for _, n := range nodes {
		st := n.Status
		if st == nil {
			continue
		}
		s.Reachable++
		voters := 0
		if !st.GetLearner() {
			voters++
		}
		for _, p := range st.GetPeers() {
			if !p.GetLearner() {
				voters++
			}
		}
		s.Members = max(s.Members, voters)
		switch {
		case st.GetFailure() != "":
			s.Failed = append(s.Failed, st.GetId())
		case !st.GetLearner():
			s.Serving++
		}
		switch {
		case st.GetLeaderId() == 0:
		case st.GetTerm() > s.Term:
			s.Term, s.LeaderID, s.Disagree = st.GetTerm(), st.GetLeaderId(), false
		case st.GetTerm() == s.Term && st.GetLeaderId() != s.LeaderID:
			s.Disagree = true
		}
		if s.LeaderID == 0 {
			s.Term = max(s.Term, st.GetTerm())
		}
	}
	s.Quorum = s.Members/2 + 1
	return s
}

// Problem says why the cluster cannot serve linearizable requests, as an operator would
// put it, or "" when a leader is known and a quorum of nodes answers.
func (s Summary) Problem() string {
	failed := ""
	if len(s.Failed) > 0 {
		failed = fmt.Sprintf(" (%d stopped after a storage failure: node %v)", len(s.Failed), s.Failed)
	}
	switch {
	case s.Reachable == 0:
		return fmt.Sprintf("no node reachable (%d endpoints asked)", s.Asked)
	case s.Serving < s.Quorum:
		return fmt.Sprintf("%d of %d nodes reachable%s; a quorum needs %d", s.Serving, s.Members, failed, s.Quorum)
	case s.Disagree:
		return fmt.Sprintf("nodes disagree on the leader of term %d", s.Term)
	case s.LeaderID == 0:
		return fmt.Sprintf("election under way (term %d): %d of %d nodes reachable, none knows a leader yet", s.Term, s.Serving, s.Members)
	}
	return ""
}

// Healthy reports whether a leader is known and a quorum of nodes answers.
func (s Summary) Healthy() bool { return s.Problem() == "" }

// diagnoseTimeout bounds the status round a failed call makes to say why.
const diagnoseTimeout = time.Second

// diagnose asks every endpoint for its status, briefly and whatever ctx the failed call
// had, and says why the cluster could not serve it.
func (c *Client) diagnose() string {
	ctx, cancel := context.WithTimeout(context.Background(), min(c.opts.AttemptTimeout, diagnoseTimeout))
	defer cancel()
	s := Summarize(c.StatusAll(ctx))
	if p := s.Problem(); p != "" {
		return p
	}
	return fmt.Sprintf("leader node %d (term %d), %d of %d nodes reachable", s.LeaderID, s.Term, s.Serving, s.Members)
}

// refusedConnection reports whether err says nothing listens at the endpoint: the kernel
// refused the connection. gRPC keeps only the text of the dial error.
func refusedConnection(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection refused")
}
