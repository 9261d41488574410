package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Per node, the view and the page show the commit and applied index each node reports, the
// replication lag as the leader sees it (not what a follower says of its own peers), and how
// old the node's data is for a stale read against its bound.
func TestViewShowsProgressLagAndStaleBound(t *testing.T) {
	c, members := newFakeCluster(t, 1)
	type progress struct {
		commit, applied uint64
		lag             uint64 // in the leader's status of this peer
		contact         time.Duration
		bound           time.Duration
	}
	nodes := map[uint64]progress{
		1: {commit: 120, applied: 119, contact: 0, bound: 2 * time.Second},
		2: {commit: 120, applied: 118, lag: 1, contact: 30 * time.Millisecond, bound: 2 * time.Second},
		3: {commit: 117, applied: 117, lag: 3, contact: 1250 * time.Millisecond, bound: 2 * time.Second},
		4: {commit: 110, applied: 104, lag: 10, contact: 45 * time.Millisecond, bound: 5 * time.Second},
		5: {commit: 80, applied: 75, lag: 40, contact: -1, bound: 2 * time.Second},
	}
	c.update(func() {
		for id, p := range nodes {
			st := c.st[id]
			st.CommitIndex, st.AppliedIndex, st.LastIndex = p.commit, p.applied, p.commit
			st.LastContactAgeNanos, st.MaxStalenessNanos = int64(p.contact), int64(p.bound)
			for _, peer := range st.Peers {
				if id == 1 {
					peer.Lag = nodes[peer.Id].lag
				} else {
					peer.Lag = 999 // a follower's word on its peers is not the lag shown
				}
			}
		}
	})
	want := map[uint64]struct{ lag, age, bound string }{
		1: {"0", "0 ms", "2.00 s"},
		2: {"1", "30.0 ms", "2.00 s"},
		3: {"3", "1.25 s", "2.00 s"},
		4: {"10", "45.0 ms", "5.00 s"},
		5: {"40", "never in contact", "2.00 s"},
	}
	con := newTestConsole(t, c, members, 3)
	v := fresh(t, con)
	if len(v.Nodes) != 5 {
		t.Fatalf("%d nodes in the view, want 5", len(v.Nodes))
	}
	for _, n := range v.Nodes {
		p, w := nodes[n.ID], want[n.ID]
		if n.Commit != p.commit || n.Applied != p.applied || n.LastIndex != p.commit {
			t.Errorf("node %d: commit %d, applied %d, last %d; want %d, %d, %d", n.ID, n.Commit, n.Applied, n.LastIndex, p.commit, p.applied, p.commit)
		}
		if n.Lag != w.lag || n.StaleAge != w.age || n.StaleBound != w.bound {
			t.Errorf("node %d: lag %q, data age %q, bound %q; want %q, %q, %q", n.ID, n.Lag, n.StaleAge, n.StaleBound, w.lag, w.age, w.bound)
		}
	}

	srv := httptest.NewServer(con)
	defer srv.Close()
	code, body := get(t, srv, "/ui")
	if code != http.StatusOK {
		t.Fatalf("GET /ui: %d", code)
	}
	for id, p := range nodes {
		row := regexp.MustCompile(fmt.Sprintf(`(?s)<tr id="node-row-%d".*?</tr>`, id)).FindString(body)
		if row == "" {
			t.Fatalf("the page has no row for node %d", id)
		}
		w := want[id]
		cells := fmt.Sprintf("<td class=\"num\">%d</td>\n<td class=\"num\">%d</td>\n<td class=\"num\">%s</td>\n", p.commit, p.applied, w.lag)
		if !strings.Contains(row, cells) || !strings.Contains(row, "<td>"+w.age+" / "+w.bound+"</td>") {
			t.Errorf("node %d's row lacks commit %d, applied %d, lag %s and data age %s / %s:\n%s", id, p.commit, p.applied, w.lag, w.age, w.bound, row)
		}
	}

	// When the leader stops answering, nobody's lag is known: no figure is shown for it.
	c.update(func() { c.down[1] = status.Error(codes.Unavailable, "connection refused") })
	v = fresh(t, con)
	for _, n := range v.Nodes {
		if n.Lag != "" {
			t.Errorf("node %d shows lag %q with no leader answering", n.ID, n.Lag)
		}
		if p := nodes[n.ID]; n.ID != 1 && (n.Commit != p.commit || n.Applied != p.applied) {
			t.Errorf("node %d: commit %d, applied %d without the leader; want its own %d, %d", n.ID, n.Commit, n.Applied, p.commit, p.applied)
		}
	}
}
