package client_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/internal/testenv"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// etcdctl member add --learner, promote, list and remove drive georaft's membership, on real
// processes: the learner etcdctl added starts under the id etcdctl printed, catches up, is
// promoted by etcdctl once it has, and is removed again.
func TestEtcdctlMembership(t *testing.T) {
	testenv.Tool(t, "etcdctl", "apt-get install etcd-client")
	ctx := context.Background()
	cl := kittest.Start(t, clusterkit.Spec{Size: 3})
	leader := kittest.WaitLeader(t, cl)
	follower := []string{cl.Node(leader%3 + 1).ClientAddr()}

	// The kit places node 4 (ports, config); it waits for an operator to promote it.
	n4, err := cl.AddNode("europe-west1", func(c *config.Config) { c.Cluster.JoinAs = config.JoinAsLearner })
	if err != nil {
		t.Fatal(err)
	}
	if out := etcdctlMayFail(t, follower, "member", "add", "node4", "--peer-urls", "http://"+n4.Config.Listen.Peer); !strings.Contains(out, "without --learner") &&
		!strings.Contains(out, "--learner") {
		t.Fatalf("member add without --learner: %q", out)
	}
	out := etcdctl(t, follower, "", "member", "add", "node4", "--learner", "--peer-urls", "http://"+n4.Config.Listen.Peer)
	if !regexp.MustCompile(`Member\s+4 added`).MatchString(out) || !strings.Contains(out, "node4=http://"+n4.Config.Listen.Peer) {
		t.Fatalf("member add --learner: %q", out)
	}
	// etcdctl 3.4 lists a member's own view (no linearizable list yet), which follows the
	// leader's within a heartbeat.
	kittest.WaitFor(t, 10*time.Second, "member list to show the learner", func() error {
		if out := etcdctl(t, follower, "", "member", "list"); !strings.Contains(out, "\n4, started, node-4, http://"+n4.Config.Listen.Peer+", , true") {
			return fmt.Errorf("%q", out)
		}
		return nil
	})
	if err := cl.StartNode(4); err != nil {
		t.Fatal(err)
	}
	kittest.WaitFor(t, time.Minute, "etcdctl to promote the caught-up learner", func() error {
		out := etcdctlMayFail(t, follower, "member", "promote", "4")
		if !strings.Contains(out, "promoted") {
			return fmt.Errorf("%s", strings.TrimSpace(out))
		}
		return nil
	})
	if err := cl.WaitRole(ctx, 4, 10*time.Second, georaftv1.MemberRole_MEMBER_ROLE_VOTER); err != nil {
		t.Fatal(err)
	}
	kittest.WaitFor(t, 10*time.Second, "member list to show four voters, node 4 with its region", func() error {
		out := etcdctl(t, follower, "", "member", "list")
		if strings.Count(out, "\n") != 4 || !strings.Contains(out, "node-4-europe-west1") || strings.Contains(out, ", true") {
			return fmt.Errorf("%q", out)
		}
		return nil
	})
	if out := etcdctl(t, follower, "", "member", "remove", "4"); !regexp.MustCompile(`Member\s+4 removed`).MatchString(out) {
		t.Fatalf("member remove: %q", out)
	}
	if err := cl.WaitRole(ctx, 4, 10*time.Second, georaftv1.MemberRole_MEMBER_ROLE_REMOVED); err != nil {
		t.Fatal(err)
	}
	kittest.WaitFor(t, 10*time.Second, "member list to show three members", func() error {
		if out := etcdctl(t, follower, "", "member", "list"); strings.Count(out, "\n") != 3 {
			return fmt.Errorf("%q", out)
		}
		return nil
	})
	if err := cl.RemoveNode(4); err != nil {
		t.Fatal(err)
	}
}

// etcdctlMayFail runs etcdctl and returns its output whether or not it failed.
func etcdctlMayFail(t *testing.T, endpoints []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "etcdctl", append([]string{"--endpoints", strings.Join(endpoints, ","), "--command-timeout", "10s"}, args...)...)
	cmd.Env = append(cmd.Environ(), "ETCDCTL_API=3")
	out, _ := cmd.CombinedOutput()
	return string(out)
}
