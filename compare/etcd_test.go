package compare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/internal/testenv"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	addrs, err := clusterkit.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}

// startSingleEtcd runs a one-member etcd in a temp dir on free loopback ports through
// EtcdCluster, the code the comparison uses, and stops it when the test ends.
func startSingleEtcd(t *testing.T) *EtcdCluster {
	t.Helper()
	testenv.Tool(t, "etcd", "apt-get install etcd-server")
	dir := t.TempDir()
	peer, cl := "http://"+freeAddr(t), "http://"+freeAddr(t)
	var log bytes.Buffer
	c := &EtcdCluster{Token: "compare-test", RunDir: filepath.Join(dir, "run"), Out: &log, Members: []EtcdMember{{
		Name: "m1", Region: "local", DataDir: filepath.Join(dir, "m1"),
		PeerURL: peer, ClientURL: cl, ListenPeerURLs: []string{peer}, ListenClientURLs: []string{cl},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop etcd: %v", err)
		}
		if pids := c.PIDs(); len(pids) != 0 {
			t.Errorf("etcd still running after Stop: %v", pids)
		}
	})
	st, err := c.PinLeader(ctx, "m1", 45*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != "m1" || st.Term == 0 {
		t.Fatalf("state %+v: want m1 leading in a term", st)
	}
	return c
}

func TestEtcdDriverSingleMember(t *testing.T) {
	c := startSingleEtcd(t)
	m, _ := c.Member("m1")
	d, err := NewEtcdDriver([]string{m.ClientAddr()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := d.Set(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{EtcdLinearizable, EtcdSerializable} {
		served, err := d.Get(ctx, "k", mode)
		if err != nil || served != mode {
			t.Errorf("get in %s: served %q, %v", mode, served, err)
		}
	}
	// The write is really there: read it back with the raw client.
	resp, err := d.Client.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("raw get after Set: %v, %v", resp, err)
	}
	if _, err := d.Get(ctx, "k", "lease"); err == nil {
		t.Error("a georaft read mode was accepted by the etcd driver")
	}

	canceled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	err = d.Set(canceled, "k", []byte("x"))
	if err == nil || d.ClassifyError(err) != bench.ErrKindCanceled {
		t.Errorf("set on a canceled context: %v classified %q, want %q", err, d.ClassifyError(err), bench.ErrKindCanceled)
	}
	if got := d.ClassifyError(fmt.Errorf("wrapped: %w", context.DeadlineExceeded)); got != bench.ErrKindTimeout {
		t.Errorf("deadline classified %q", got)
	}

	// The same engine that drives georaft drives etcd: every row, no errors.
	rep, err := bench.Run(ctx, bench.Config{Driver: d, ReadModes: []string{EtcdLinearizable, EtcdSerializable}, WriteRatio: 0.2,
		Concurrency: 4, Ops: 200, Keys: 50, ValueSize: 16, KeyPrefix: "bench/", Prefill: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Driver != "etcd" {
		t.Errorf("report driver %q", rep.Driver)
	}
	for _, name := range []string{EtcdLinearizable, EtcdSerializable, bench.WriteRow} {
		r, ok := rep.Row(name)
		if !ok || r.Ops == 0 || r.Errors != 0 {
			t.Errorf("row %s: %+v", name, r)
		}
	}
	// Prefill wrote every key: 50 keys under the engine's prefix.
	keys, err := d.Client.Get(ctx, "bench/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || keys.Count != 50 {
		t.Errorf("keys after prefill: %v, %v; want 50", keys, err)
	}
}

func TestEtcdStopOnlyStopsItsOwnProcess(t *testing.T) {
	c := startSingleEtcd(t)
	pids := c.PIDs()
	if len(pids) != 1 {
		t.Fatalf("pids %v: want m1's", pids)
	}
	m := c.Members[0]
	// A matcher for another data dir does not recognise the member.
	if argv, err := clusterkit.ProcessArgs(pids["m1"]); err != nil || EtcdWithDataDir(m.DataDir+"x")(argv) || !EtcdWithDataDir(m.DataDir)(argv) {
		t.Errorf("matcher on %v: wrong answer (err %v)", argv, err)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if clusterkit.ProcessAlive(pids["m1"]) {
		t.Errorf("etcd pid %d still alive after Stop", pids["m1"])
	}
	// A second Stop finds no PID file and does nothing.
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestEtcdArgsKeepDefaultDurability(t *testing.T) {
	c := &EtcdCluster{Binary: "etcd", Token: "t", Members: []EtcdMember{
		{Name: "m1", DataDir: "/d/m1", PeerURL: "http://10.213.0.11:2380", ClientURL: "http://10.213.0.11:2379",
			ListenPeerURLs: []string{"http://10.213.0.21:2380"}, ListenClientURLs: []string{"http://10.213.0.11:2379"}, Namespace: "gcmp-e1"},
		{Name: "m2", DataDir: "/d/m2", PeerURL: "http://10.213.0.12:2380"},
	}}
	bin, args := c.Command(c.Members[0])
	if bin != "ip" || !slices.Equal(args[:4], []string{"netns", "exec", "gcmp-e1", "etcd"}) {
		t.Errorf("command %s %v: want ip netns exec gcmp-e1 etcd ...", bin, args)
	}
	for _, flag := range []string{"--unsafe-no-fsync", "--snapshot-count", "--heartbeat-interval", "--election-timeout"} {
		if slices.Contains(args, flag) || clusterkit.FlagValue(args, flag) != "" {
			t.Errorf("etcd gets %s: durability and timing must stay at etcd's defaults", flag)
		}
	}
	if got := clusterkit.FlagValue(args, "--initial-cluster"); got != "m1=http://10.213.0.11:2380,m2=http://10.213.0.12:2380" {
		t.Errorf("--initial-cluster %q", got)
	}
	if got := clusterkit.FlagValue(args, "--listen-peer-urls"); got != "http://10.213.0.21:2380" {
		t.Errorf("--listen-peer-urls %q: want only the back door", got)
	}
	if !EtcdWithDataDir("/d/m1")(append([]string{"/usr/bin/etcd"}, c.Args(c.Members[0])...)) {
		t.Error("matcher does not recognise the member's own command line")
	}
}

func TestLookupEtcdNamesThePackage(t *testing.T) {
	_, err := LookupEtcd("etcd-binary-that-does-not-exist")
	if !errors.Is(err, ErrEtcdMissing) {
		t.Fatalf("missing etcd: %v", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte("apt-get install -y etcd-server")) {
		t.Errorf("error %q does not say how to install etcd", err)
	}
}

func TestGRPCFloorMeasures(t *testing.T) {
	samples, err := GRPCRoundTrips(context.Background(), 5, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 50 || !slices.IsSorted(samples) || samples[0] <= 0 {
		t.Errorf("samples: %d, sorted %v, first %v", len(samples), slices.IsSorted(samples), samples[0])
	}
	if p50, p99 := percentile(samples, 50), percentile(samples, 99); p50 > p99 || p50 < samples[0] {
		t.Errorf("p50 %v p99 %v min %v", p50, p99, samples[0])
	}
}
