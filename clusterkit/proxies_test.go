package clusterkit

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProxiesDelayEachDirectionAndChangeAtRunTime(t *testing.T) {
	upstream := echoServer(t)
	short, long := freeAddr(t), freeAddr(t)
	plan := ProxyPlan{Links: []Link{
		{Name: "short", Listen: short, Upstream: upstream, UpstreamMillis: 2, DownstreamMillis: 1},
		{Name: "long", Listen: long, Upstream: upstream, UpstreamMillis: 12, DownstreamMillis: 10},
	}}
	proxies, err := StartProxies(plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer proxies.Close()
	direct := medianRoundTrip(t, upstream, 15)
	viaShort := medianRoundTrip(t, short, 15)
	viaLong := medianRoundTrip(t, long, 15)
	t.Logf("p50 round trip: direct %v, 3ms link %v, 22ms link %v", direct, viaShort, viaLong)
	// A toxic sleeps at least its latency; more load only adds.
	if viaShort < 3*time.Millisecond || viaLong < 22*time.Millisecond {
		t.Errorf("a link returned faster than its toxics allow: %v (≥3ms), %v (≥22ms)", viaShort, viaLong)
	}
	if !(direct < viaShort && viaShort < viaLong) {
		t.Errorf("want direct < short link < long link, got %v, %v, %v", direct, viaShort, viaLong)
	}
	// The short link made long at run time: at least its new delay on new connections.
	if err := proxies.Links()[0].SetRTT(30 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := medianRoundTrip(t, short, 5); d < 30*time.Millisecond {
		t.Errorf("after SetRTT(30ms) the link answers in %v", d)
	}
	// A second plan on the same listener cannot start, and says which link.
	if _, err := StartProxies(ProxyPlan{Links: []Link{{Name: "dup", Listen: short, Upstream: upstream}}}, nil); err == nil || !strings.Contains(err.Error(), "dup") {
		t.Errorf("second proxy on a taken port: %v", err)
	}
	proxies.Close()
	if _, err := net.DialTimeout("tcp", short, time.Second); err == nil {
		t.Error("a closed proxy still accepts connections")
	}
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

// A cut link carries nothing (while the opposite link still works), dropping answers keeps
// requests flowing, and healing closes the connections a fault held so that new ones carry
// data again.
func TestCutIsOneWayAndHeals(t *testing.T) {
	addrs := []string{freeAddr(t), freeAddr(t)}
	plan := ProxyPlan{Links: []Link{
		{Name: "peer 1->2", Kind: PeerLink, FromNode: 1, ToNode: 2, Listen: addrs[0], Upstream: echoServer(t), UpstreamMillis: 1},
		{Name: "peer 2->1", Kind: PeerLink, FromNode: 2, ToNode: 1, Listen: addrs[1], Upstream: echoServer(t)},
	}}
	p, err := StartProxies(plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
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
	link, err := p.Peer(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := link.Cut(); err != nil {
		t.Fatal(err)
	}
	back, _ := p.Peer(2, 1)
	if !link.Faulty() || back.Faulty() {
		t.Fatalf("faulty: 1->2 %v, 2->1 %v; want only 1->2", link.Faulty(), back.Faulty())
	}
	// A black hole shows as silence; the opposite direction is unaffected.
	if err := roundTrip(oneTwo, "during", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("cut link answered (err %v), want silence", err)
	}
	if err := roundTrip(dial(addrs[0]), "during", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection over a cut link answered (err %v), want silence", err)
	}
	if err := roundTrip(twoOne, "other way", 10*time.Second); err != nil {
		t.Fatalf("the opposite link stopped working during a one-way cut: %v", err)
	}
	if err := p.HealAll(); err != nil {
		t.Fatal(err)
	}
	if link.Faulty() {
		t.Fatal("link still faulty after heal")
	}
	// The connection that lived through the cut is closed rather than resumed with a gap.
	_ = oneTwo.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := oneTwo.Read(make([]byte, 16)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection held through the cut: read error %v, want it closed", err)
	}
	if err := roundTrip(dial(addrs[0]), "after", 10*time.Second); err != nil {
		t.Fatalf("healed link: %v", err)
	}

	// Dropped answers: the request arrives (the echo server sends it back), nothing returns.
	if err := back.DropResponses(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(dial(addrs[1]), "lost", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("answer came back through a link dropping answers (err %v)", err)
	}
	if err := back.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(dial(addrs[1]), "back", 10*time.Second); err != nil {
		t.Fatalf("healed link: %v", err)
	}
	if _, err := p.Peer(1, 3); err == nil {
		t.Fatal("a link that does not exist was found")
	}
}

func TestServeProxiesSignalsReadinessAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	upstream := echoServer(t)
	listen := freeAddr(t)
	planPath, readyPath := filepath.Join(dir, "plan.json"), filepath.Join(dir, "ready")
	if err := WritePlan(planPath, ProxyPlan{Links: []Link{{Name: "l", Listen: listen, Upstream: upstream, UpstreamMillis: 1}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeProxies(ctx, planPath, readyPath, io.Discard) }()
	waitFor(t, 10*time.Second, "the ready file", func() error {
		raw, err := os.ReadFile(readyPath)
		if err == nil && strings.TrimSpace(string(raw)) != strconv.Itoa(os.Getpid()) {
			err = errors.New("ready file names another pid")
		}
		return err
	})
	if d := medianRoundTrip(t, listen, 3); d < time.Millisecond {
		t.Errorf("served link answered in %v, under its 1ms toxic", d)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(readyPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ready file left behind: %v", err)
	}
	if err := os.WriteFile(planPath, []byte(`{"links":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ServeProxies(context.Background(), planPath, readyPath, io.Discard); err == nil || !strings.Contains(err.Error(), planPath) {
		t.Errorf("empty plan: %v, want an error naming the file", err)
	}
}
