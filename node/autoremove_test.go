package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// TestAutoRemovalOfASilentMember: with cluster.auto_remove_after set, the leader removes a
// follower it has not heard from for that long, and keeps the next silent one once a removal
// would leave fewer than cluster.auto_remove_min_voters voters; it says why in dump.txt.
func TestAutoRemovalOfASilentMember(t *testing.T) {
	c := newTestCluster(t, 4, func(cfg *config.Config) {
		cfg.Cluster.LastContactThreshold = 2 * time.Second
		cfg.Cluster.AutoRemoveAfter = 4 * time.Second
		cfg.Cluster.AutoRemoveMinVoters = 3
	})
	leader := c.waitLeader(10 * time.Second)
	first, second := (leader+1)%4, (leader+2)%4
	c.mustSet("before", "v")
	c.kill(first)
	firstID := uint64(first + 1)
	c.waitMembership(leader, "the silent follower removed", 60*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return roleOf(r, firstID) == georaftv1.MemberRole_MEMBER_ROLE_REMOVED
	})
	c.mustSet("after-first", "v")

	c.kill(second)
	secondID := uint64(second + 1)
	dump := filepath.Join(c.cfgs[leader].Node.DataDir, "dump.txt")
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(dump)
		if strings.Contains(string(b), "would leave 2 voters, fewer than cluster.auto_remove_min_voters (3)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader never said why it keeps silent member %d; dump.txt:\n%s", secondID, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.waitMembership(leader, "the second silent follower kept", 10*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return roleOf(r, secondID) == georaftv1.MemberRole_MEMBER_ROLE_VOTER
	})
	c.mustSet("after-second", "v")
}
