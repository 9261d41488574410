package chaos

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/georaft/georaft/lab"
)

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); _, _ = io.Copy(conn, conn) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(conn net.Conn, msg string, wait time.Duration) error {
	if err := conn.SetDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo returned " + string(buf))
	}
	return nil
}

// TestNetCutIsOneWayAndHeals checks the link control the faults are built on: a cut link
// carries nothing (while the opposite link still works), and healing closes the connections
// the cut held so that new ones carry data again.
func TestNetCutIsOneWayAndHeals(t *testing.T) {
	addrs, err := freeAddresses(2)
	if err != nil {
		t.Fatal(err)
	}
	plan := lab.ProxyPlan{Links: []lab.Link{
		{Name: "peer 1->2", Kind: "peer", FromNode: 1, ToNode: 2, Listen: addrs[0], Upstream: echoServer(t), UpstreamMillis: 1},
		{Name: "peer 2->1", Kind: "peer", FromNode: 2, ToNode: 1, Listen: addrs[1], Upstream: echoServer(t)},
	}}
	n, err := StartNet(plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	dial := func(addr string) net.Conn {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	oneTwo, twoOne := dial(addrs[0]), dial(addrs[1])
	for _, c := range []net.Conn{oneTwo, twoOne} {
		if err := roundTrip(c, "before", 10*time.Second); err != nil {
			t.Fatalf("healthy link: %v", err)
		}
	}

	if err := n.Cut(1, 2); err != nil {
		t.Fatal(err)
	}
	if got := n.Faulty(); len(got) != 1 || got[0] != "peer 1->2" {
		t.Fatalf("faulty links %v, want only peer 1->2", got)
	}
	// A black hole shows as silence; the opposite direction is unaffected.
	if err := roundTrip(oneTwo, "during", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("cut link answered (err %v), want silence", err)
	}
	fresh := dial(addrs[0])
	if err := roundTrip(fresh, "during", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection over a cut link answered (err %v), want silence", err)
	}
	if err := roundTrip(twoOne, "other way", 10*time.Second); err != nil {
		t.Fatalf("the opposite link stopped working during a one-way cut: %v", err)
	}

	if err := n.HealAll(); err != nil {
		t.Fatal(err)
	}
	if got := n.Faulty(); len(got) != 0 {
		t.Fatalf("faulty links after heal: %v", got)
	}
	// The connection that lived through the cut is closed rather than resumed with a gap.
	_ = oneTwo.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := oneTwo.Read(make([]byte, 16)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection held through the cut: read error %v, want it closed", err)
	}
	if err := roundTrip(dial(addrs[0]), "after", 10*time.Second); err != nil {
		t.Fatalf("healed link: %v", err)
	}
	if err := n.Cut(1, 3); err == nil {
		t.Fatal("cutting a link that does not exist succeeded")
	}
}
