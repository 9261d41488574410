package clusterkit

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestGeoPortPlanNeverCollides(t *testing.T) {
	p := DefaultGeoPorts
	seen := map[string]string{}
	claim := func(addr, what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if other, dup := seen[addr]; dup {
			t.Errorf("%s and %s both use %s", other, what, addr)
		}
		seen[addr] = what
	}
	for i := uint64(1); i <= MaxGeoNodes; i++ {
		l, err := p.Listen(i)
		claim(l.Peer, fmt.Sprintf("node %d peer", i), err)
		claim(l.Client, fmt.Sprintf("node %d client", i), err)
		claim(l.Metrics, fmt.Sprintf("node %d metrics", i), err)
		for j := uint64(1); j <= MaxGeoNodes; j++ {
			a, err := p.ClientLink(int(i), j)
			claim(a, fmt.Sprintf("client link %d->%d", i, j), err)
			if i != j {
				a, err := p.PeerLink(i, j)
				claim(a, fmt.Sprintf("peer link %d->%d", i, j), err)
			}
		}
	}
	must := func(a string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	l3, _ := p.Listen(3)
	local1, _ := DefaultLocalPorts.Listen(1)
	local5, _ := DefaultLocalPorts.Listen(5)
	for _, tc := range []struct{ got, want string }{
		{must(p.PeerLink(1, 2)), "127.0.0.1:2120"},
		{must(p.PeerLink(5, 4)), "127.0.0.1:2540"},
		{must(p.ClientLink(4, 1)), "127.0.0.1:2411"},
		{l3.Peer, "127.0.0.1:2803"}, {l3.Client, "127.0.0.1:2813"}, {l3.Metrics, "127.0.0.1:2823"},
		{local1.Peer, "127.0.0.1:7101"}, {local5.Client, "127.0.0.1:7205"}, {local1.Metrics, "127.0.0.1:7301"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	if _, err := (GeoPorts{Host: "127.0.0.1", Base: 65000}).Listen(1); err == nil {
		t.Error("a base that pushes ports past 65535 was accepted")
	}
	if _, err := p.Listen(MaxGeoNodes + 1); err == nil {
		t.Error("a node the plan cannot number was accepted")
	}
	if _, err := DefaultLocalPorts.PeerLink(1, 2); err == nil {
		t.Error("the local plan gave a link")
	}
}

// Free ports are distinct, below the ephemeral range, and the same for the same name.
func TestFreePortsAreStableAndDistinct(t *testing.T) {
	var p FreePorts
	seen := map[string]bool{}
	for id := uint64(1); id <= 5; id++ {
		l, err := p.Listen(id)
		if err != nil {
			t.Fatal(err)
		}
		link, err := p.PeerLink(id, id%5+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{l.Peer, l.Client, l.Metrics, link} {
			if seen[a] {
				t.Errorf("%s handed out twice", a)
			}
			seen[a] = true
			_, port, _ := net.SplitHostPort(a)
			if n, err := strconv.Atoi(port); err != nil || n >= ephemeralLow() || n < 1024 {
				t.Errorf("%s is not below the ephemeral range (%d)", a, ephemeralLow())
			}
		}
		again, _ := p.Listen(id)
		if again != l {
			t.Errorf("node %d listens on %+v, then %+v", id, l, again)
		}
	}
}

func TestCheckPortsFreeNamesTheTakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = CheckPortsFree([]NamedAddress{{"node 2 listen.client", ln.Addr().String()}, {"node 3 listen.peer", freeAddr(t)}})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "node 2 listen.client") {
		t.Errorf("error %v, want one naming %s and node 2", err, ln.Addr())
	}
	if err != nil && strings.Contains(err.Error(), "node 3") {
		t.Errorf("a free port was reported taken: %v", err)
	}
}

// TestPortClaimsExcludeEachOther: a claimed port cannot be claimed again through another open
// file, as another process would try; FreeAddrs then skips it.
func TestPortClaimsExcludeEachOther(t *testing.T) {
	port := fmt.Sprintf("test-claim-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(filepath.Join(os.TempDir(), "georaft-ports", port)) })
	if !claimPort(port) {
		t.Fatalf("a fresh claim on %s was refused", port)
	}
	if claimPort(port) {
		t.Fatalf("a second claim on %s was granted while the first holds it", port)
	}
}
