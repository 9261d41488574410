package node_test

import (
	"testing"
	"time"

	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// A node joins a TLS cluster (the kit's default: make cluster-replace-node and
// cluster-add-node start the new node with cluster.join): it dials the member it was given on
// its client port, checks that member's node certificate against the CA, is added as a
// learner under the id its own certificate names, and is promoted.
func TestJoinOverTLS(t *testing.T) {
	files := generateTLSFiles(t, 4)
	c := newTLSTestCluster(t, 3, files, "require")
	leader := c.waitLeader(10 * time.Second)
	c.mustSet("before-join", "v")
	c.addNode(c.joinerConfig((leader+1)%3, "region-4", func(cfg *config.Config) {
		cfg.Node.ID = 4
		f := files.Nodes[4]
		cfg.TLS = config.TLSConfig{Enabled: true, CAFile: files.CA.Cert, CertFile: f.Cert, KeyFile: f.Key, ClientAuth: "require"}
	}))
	c.waitMembership(leader, "node 4 joined over TLS and promoted", 30*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return roleOf(r, 4) == georaftv1.MemberRole_MEMBER_ROLE_VOTER
	})
}
