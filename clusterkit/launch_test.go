package clusterkit

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A free port another program took before the node could bind it costs a retry on fresh
// ports, not the cluster.
func TestLaunchRetriesOnFreshPorts(t *testing.T) {
	root, err := ModuleRoot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bin, err := Build(context.Background(), root, t.TempDir(), "./node/cmd/georaftd")
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ports := &FreePorts{byName: map[string]string{"node 2 client": taken.Addr().String()}}
	var log strings.Builder
	c, leader, err := Launch(context.Background(), t.TempDir(), Spec{Size: 3, Ports: ports}, Options{Georaftd: bin, Log: &log},
		Want{All: true}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Node(2).ClientAddr() == taken.Addr().String() || leader.ID == 0 {
		t.Fatalf("node 2 listens on %s, the taken port; leader %d", c.Node(2).ClientAddr(), leader.ID)
	}
	if !strings.Contains(log.String(), "trying again on fresh ports") {
		t.Errorf("the retry was not logged:\n%s", log.String())
	}
}
