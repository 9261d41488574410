package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

var allModes = []georaftv1.ReadMode{
	georaftv1.ReadMode_READ_MODE_LEASE,
	georaftv1.ReadMode_READ_MODE_INDEX,
	georaftv1.ReadMode_READ_MODE_LOG,
	georaftv1.ReadMode_READ_MODE_STALE,
}

// Every read mode returns what was written, through the leader; lease reads are served as
// lease reads once the lease is held.
func TestClusterElectsWritesAndReadsInEveryMode(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d-nodes", size), func(t *testing.T) {
			c := newTestCluster(t, size, nil)
			leader := c.waitLeader(10 * time.Second)
			resp, err := c.set(leader, "greeting", "hello")
			if err != nil {
				t.Fatalf("set on the leader: %v", err)
			}
			if resp.Index == 0 || resp.Header.LeaderId != uint64(leader+1) {
				t.Fatalf("set answered %+v, want a log index and leader %d", resp, leader+1)
			}
			c.waitLease(leader, 5*time.Second)
			for _, mode := range allModes {
				got, err := c.get(leader, "greeting", mode)
				if err != nil {
					t.Fatalf("%v read: %v", mode, err)
				}
				if !got.Found || string(got.Value) != "hello" {
					t.Fatalf("%v read returned found=%v value=%q, want hello", mode, got.Found, got.Value)
				}
				if got.ServedMode != mode {
					t.Errorf("%v read was served as %v", mode, got.ServedMode)
				}
			}
			missing, err := c.get(leader, "nobody-wrote-this", georaftv1.ReadMode_READ_MODE_LEASE)
			if err != nil || missing.Found {
				t.Fatalf("read of a missing key: found=%v err=%v, want not found", missing.GetFound(), err)
			}
			del, err := c.clients[leader].Delete(context.Background(), &georaftv1.DeleteRequest{Key: []byte("greeting")})
			if err != nil || !del.Existed {
				t.Fatalf("delete: existed=%v err=%v, want existed", del.GetExisted(), err)
			}
			after, err := c.get(leader, "greeting", georaftv1.ReadMode_READ_MODE_INDEX)
			if err != nil || after.Found {
				t.Fatalf("read after delete: found=%v err=%v", after.GetFound(), err)
			}
		})
	}
}

// A follower redirects lease and index reads and writes to the leader, naming it.
func TestFollowerRedirectsToLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	_, err := c.set(follower, "k", "v")
	assertNotLeader(t, err, uint64(leader+1), c.cfgs[leader].Listen.Client)
	_, err = c.get(follower, "k", georaftv1.ReadMode_READ_MODE_LEASE)
	assertNotLeader(t, err, uint64(leader+1), c.cfgs[leader].Listen.Client)
	_, err = c.get(follower, "k", georaftv1.ReadMode_READ_MODE_INDEX)
	assertNotLeader(t, err, uint64(leader+1), c.cfgs[leader].Listen.Client)
}

func assertNotLeader(t *testing.T, err error, leader uint64, addr string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("got %v, want FAILED_PRECONDITION with a NotLeader detail", err)
	}
	for _, d := range st.Details() {
		if nl, ok := d.(*georaftv1.NotLeader); ok {
			if nl.LeaderId != leader || nl.LeaderAddress != addr {
				t.Fatalf("NotLeader names %d at %s, want %d at %s", nl.LeaderId, nl.LeaderAddress, leader, addr)
			}
			return
		}
	}
	t.Fatalf("FAILED_PRECONDITION without a NotLeader detail: %v", err)
}

// A stale read on a follower returns the follower's applied state, which catches up.
func TestStaleReadOnFollower(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	resp, err := c.set(leader, "k", "v1")
	if err != nil {
		t.Fatal(err)
	}
	follower := (leader + 1) % 3
	c.waitApplied(follower, resp.Index, 5*time.Second)
	got, err := c.get(follower, "k", georaftv1.ReadMode_READ_MODE_STALE)
	if err != nil || string(got.Value) != "v1" || got.Header.NodeId != uint64(follower+1) {
		t.Fatalf("stale read on node %d: %+v err=%v", follower+1, got, err)
	}
}

// Restarting every node recovers every value from the WAL.
func TestRestartAllRecoversEveryValue(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	const n = 50
	for i := 0; i < n; i++ {
		c.mustSet(fmt.Sprintf("key-%03d", i), fmt.Sprintf("value-%d", i))
	}
	for i := range c.servers {
		c.kill(i)
	}
	for i := range c.servers {
		c.start(i)
	}
	leader := c.waitLeader(10 * time.Second)
	for i := 0; i < n; i++ {
		got, err := c.get(leader, fmt.Sprintf("key-%03d", i), georaftv1.ReadMode_READ_MODE_INDEX)
		if err != nil || !got.Found || string(got.Value) != fmt.Sprintf("value-%d", i) {
			t.Fatalf("after restart key-%03d: %+v err=%v", i, got, err)
		}
	}
}

// Killing the leader elects another, and nothing acknowledged is lost.
func TestLeaderCrashLosesNothingAcknowledged(t *testing.T) {
	c := newTestCluster(t, 5, nil)
	leader := c.waitLeader(10 * time.Second)
	acked := map[string]string{}
	for i := 0; i < 30; i++ {
		k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		if _, err := c.set(leader, k, v); err != nil {
			t.Fatalf("set before the crash: %v", err)
		}
		acked[k] = v
	}
	c.kill(leader)
	next := c.waitLeader(10 * time.Second)
	if next == leader {
		t.Fatalf("the killed node %d is still reported leader", leader+1)
	}
	for i := 30; i < 40; i++ {
		k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		c.mustSet(k, v)
		acked[k] = v
	}
	c.start(leader)
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, err := c.get(next, k, georaftv1.ReadMode_READ_MODE_LOG)
		if err != nil || string(got.Value) != acked[k] {
			t.Fatalf("acknowledged %s=%s lost: got %+v err=%v", k, acked[k], got, err)
		}
	}
	// The restarted node catches up to the same state.
	st, err := c.clients[next].Status(context.Background(), &georaftv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c.waitApplied(leader, st.CommitIndex, 10*time.Second)
}

// A follower that missed more than the snapshot threshold is caught up with a snapshot.
func TestFarBehindFollowerCaughtUpBySnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) { cfg.Storage.SnapshotEntries = 40 })
	leader := c.waitLeader(10 * time.Second)
	lagging := (leader + 1) % 3
	c.kill(lagging)
	var last uint64
	for i := 0; i < 200; i++ {
		resp, err := c.set(leader, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
		if err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
		last = resp.Index
	}
	// Wait until the leader compacted past what the lagging node has.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.clients[leader].Status(context.Background(), &georaftv1.StatusRequest{})
		if err == nil && st.SnapshotIndex > 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader did not snapshot: %+v err=%v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.start(lagging)
	c.waitApplied(lagging, last, 15*time.Second)
	// The caught-up node serves stale reads once the leader has vouched for its state (a
	// heartbeat echoing this boot's clock). When the snapshot brings it all the way to last,
	// which the engine's image does, that may be a round after it applied last: until then
	// it refuses as too stale, which is right.
	var got *georaftv1.GetResponse
	var err error
	for stop := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err = c.get(lagging, "k199", georaftv1.ReadMode_READ_MODE_STALE)
		if status.Code(err) != codes.Unavailable || time.Now().After(stop) {
			break
		}
	}
	if err != nil || string(got.Value) != "v199" {
		t.Fatalf("lagging node after catch-up: %+v err=%v", got, err)
	}
	// The snapshot carried the history too: a watch on the caught-up node from the first
	// revision replays every write.
	cli := etcdClient(t, c.cfgs[lagging].Listen.Client)
	ctx := ctxT(t)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := 0
	for wr := range cli.Watch(wctx, "k", clientv3.WithPrefix(), clientv3.WithRev(1)) {
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		events += len(wr.Events)
		if events >= 200 {
			break
		}
	}
	if events != 200 {
		t.Fatalf("a watch from revision 1 on the caught-up node replayed %d writes, want 200", events)
	}
	// And its state is the leader's.
	for {
		a, b := c.mustStatusWithHash(leader), c.mustStatusWithHash(lagging)
		if a.AppliedIndex == b.AppliedIndex {
			if a.StateHash != b.StateHash {
				t.Fatalf("at applied index %d the leader's state hash is %x, the caught-up node's %x", a.AppliedIndex, a.StateHash, b.StateHash)
			}
			break
		}
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("the caught-up node never reached the leader's applied index")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.kill(lagging) // flushes dump.txt
	dump, err := os.ReadFile(filepath.Join(c.cfgs[lagging].Node.DataDir, node.DumpFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dump, []byte("installed snapshot")) {
		t.Fatalf("the lagging node's dump.txt does not record a snapshot install:\n%s", dump)
	}
}

// Keys and values over the configured limits are refused with INVALID_ARGUMENT naming the field.
func TestOversizedKeysAndValuesRefused(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		cfg.Limits.MaxKeyBytes = 64
		cfg.Limits.MaxValueBytes = 1024
	})
	leader := c.waitLeader(10 * time.Second)
	cases := []struct {
		name, key, value, field string
	}{
		{"key too long", strings.Repeat("k", 65), "v", "key"},
		{"empty key", "", "v", "key"},
		{"value too long", "k", strings.Repeat("v", 1025), "value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.set(leader, tc.key, tc.value)
			assertInvalidField(t, err, tc.field)
		})
	}
	_, err := c.get(leader, strings.Repeat("k", 65), georaftv1.ReadMode_READ_MODE_LEASE)
	assertInvalidField(t, err, "key")
	_, err = c.clients[leader].Get(context.Background(), &georaftv1.GetRequest{Key: []byte("k"), ReadMode: 42})
	assertInvalidField(t, err, "read_mode")
	// The node is unharmed.
	if _, err := c.set(leader, "k", "fine"); err != nil {
		t.Fatalf("a valid write after refusals: %v", err)
	}
}

func assertInvalidField(t *testing.T, err error, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT on %s", err, field)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			if got := br.FieldViolations[0].Field; got != field {
				t.Fatalf("BadRequest names field %q, want %q (%v)", got, field, err)
			}
			return
		}
	}
	t.Fatalf("INVALID_ARGUMENT without a BadRequest detail: %v", err)
}

// A retried write with the same session and sequence is applied once.
func TestRetriedWriteAppliedOnce(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	session := &georaftv1.WriteSession{ClientId: 77, Sequence: 1}
	first, err := c.clients[leader].Set(context.Background(), &georaftv1.SetRequest{Key: []byte("k"), Value: []byte("a"), Session: session})
	if err != nil {
		t.Fatal(err)
	}
	// Another client changes the key; then the first client's retry arrives late.
	if _, err := c.set(leader, "k", "b"); err != nil {
		t.Fatal(err)
	}
	retry, err := c.clients[leader].Set(context.Background(), &georaftv1.SetRequest{Key: []byte("k"), Value: []byte("a"), Session: session})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if retry.Index != first.Index {
		t.Errorf("retry reports index %d, the original write was at %d", retry.Index, first.Index)
	}
	got, err := c.get(leader, "k", georaftv1.ReadMode_READ_MODE_INDEX)
	if err != nil || string(got.Value) != "b" {
		t.Fatalf("the retry was applied again: value %q err=%v, want b", got.GetValue(), err)
	}
}

// dump.txt tells the story an operator wants to read: elections and leases always, client
// traffic (requests, commits, applied entries) only when log.dump_requests asks for it.
func TestDumpRecordsTheStory(t *testing.T) {
	story := []string{"election timeout", "became leader", "lease acquired"}
	traffic := []string{"committed up to index", "applied entries up to index",
		"client request received: SET x 5", "client request received: GET x (lease read)"}
	for _, requests := range []string{"off", "all"} {
		t.Run(requests, func(t *testing.T) {
			c := newTestCluster(t, 3, func(cfg *config.Config) { cfg.Log.DumpRequests = requests })
			leader := c.waitLeader(10 * time.Second)
			c.waitLease(leader, 5*time.Second)
			if _, err := c.set(leader, "x", "5"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.get(leader, "x", georaftv1.ReadMode_READ_MODE_LEASE); err != nil {
				t.Fatal(err)
			}
			for i := range c.servers {
				c.kill(i) // flushes dump.txt
			}
			dump, err := os.ReadFile(filepath.Join(c.cfgs[leader].Node.DataDir, node.DumpFileName))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range story {
				if !bytes.Contains(dump, []byte(want)) {
					t.Errorf("leader's dump.txt lacks %q", want)
				}
			}
			for _, line := range traffic {
				if got := bytes.Contains(dump, []byte(line)); got != (requests == "all") {
					t.Errorf("log.dump_requests %s: dump.txt has %q: %v", requests, line, got)
				}
			}
			if t.Failed() {
				t.Logf("dump.txt:\n%s", tail(dump, 3000))
			}
		})
	}
}

// georaftd inspect prints the metadata and one line per entry.
func TestInspectPrintsTheLog(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	resp, err := c.set(leader, "x", "5")
	if err != nil {
		t.Fatal(err)
	}
	c.kill(leader)
	var out bytes.Buffer
	if err := node.Inspect(c.cfgs[leader].Node.DataDir, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	want := fmt.Sprintf("%d term=", resp.Index)
	if !strings.Contains(text, "term:") || !strings.Contains(text, "commit:") || !strings.Contains(text, want) ||
		!strings.Contains(text, "SET x 5") || !strings.Contains(text, "NOOP") {
		t.Fatalf("inspect output lacks metadata or the entry %q:\n%s", want+"… SET x 5", text)
	}
	// The write was acknowledged, so it is committed, whatever commit index the node had
	// written to disk before it was killed.
	if strings.Contains(text, "not committed") {
		t.Fatalf("inspect calls an acknowledged write uncommitted:\n%s", text)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// /metrics exposes the role, the lease, fsync latency, per-peer RTT and request latency.
func TestMetricsEndpoint(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) { cfg.Listen.Metrics = "127.0.0.1:0" })
	leader := c.waitLeader(10 * time.Second)
	c.waitLease(leader, 5*time.Second)
	if _, err := c.set(leader, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.get(leader, "k", georaftv1.ReadMode_READ_MODE_LEASE); err != nil {
		t.Fatal(err)
	}
	url := "http://" + c.servers[leader].MetricsAddr() + "/metrics"
	want := []string{
		`georaft_role{node="%d",role="leader"} 1`, `georaft_lease_held{node="%d"} 1`,
		`georaft_wal_fsync_seconds_count{node="%d"}`, `georaft_peer_rtt_seconds{node="%d",peer=`,
		`georaft_request_duration_seconds_count{node="%d",op="get"} 1`, `georaft_read_duration_seconds_count{mode="lease",node="%d"} 1`,
		`georaft_leader_changes_total{node="%d"} `, `georaft_build_info{goversion="` + runtime.Version() + `",node="%d"`,
		// Buckets a person reads: 1 ms, not 0.0009532...
		`georaft_request_duration_seconds_bucket{node="%d",op="get",le="0.001"}`,
	}
	deadline := time.Now().Add(10 * time.Second)
	var body string
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		missing := ""
		for _, w := range want {
			if w := fmt.Sprintf(w, leader+1); !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s:\n%s", missing, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The leader saw at least one leader: itself (an election race may add one).
	if m := regexp.MustCompile(`georaft_leader_changes_total\{node="\d+"\} (\d+)`).FindStringSubmatch(body); m == nil || m[1] == "0" {
		t.Errorf("leader changes: %v", m)
	}
	if strings.Contains(body, `mode=""`) {
		t.Errorf("/metrics has an empty mode label:\n%s", body)
	}
	// A write sent to a follower is a redirect, not an error.
	follower := (leader + 1) % 3
	if _, err := c.set(follower, "k", "v2"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("set at follower %d: %v, want a NotLeader redirect", follower+1, err)
	}
	resp, err := http.Get("http://" + c.servers[follower].MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`georaft_request_redirects_total{node="%d",op="set"} 1`, follower+1); !strings.Contains(string(raw), want) ||
		strings.Contains(string(raw), "FailedPrecondition") {
		t.Errorf("follower's /metrics: want %s and no FailedPrecondition error:\n%s", want, raw)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + c.servers[leader].MetricsAddr() + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", path, resp.Status, err)
		}
		resp.Body.Close()
	}
}

// The leader stops gracefully while 16 clients keep writing to it, and another node takes
// over.
func TestGracefulStopUnderLoad(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := 0; w < 16; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.set(leader, fmt.Sprintf("w%d-%d", w, i), "v")
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() { close(stop); writers.Wait() })
	defer stopWriters()
	time.Sleep(200 * time.Millisecond) // let the load build up; the assertion below does not depend on it
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.servers[leader].Stop(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop under load: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the node did not stop under load within 20s")
	}
	c.servers[leader] = nil
	// The writers would now spin on a closed node, failing at once, and starve the two
	// nodes that must elect a leader: they share this process's two cores. (Real clients
	// back off; under a loaded CI machine this spin held off every election for 10 s.)
	stopWriters()
	if next := c.waitLeader(10 * time.Second); next == leader {
		t.Fatalf("the stopped node %d is still the leader", leader+1)
	}
}

func (c *testCluster) mustStatusWithHash(i int) *georaftv1.StatusResponse {
	c.t.Helper()
	st, err := c.clients[i].Status(context.Background(), &georaftv1.StatusRequest{IncludeStateHash: true})
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// A transport log line names its component once, and the node once.
func TestTransportLogLinesNameTheirComponentOnce(t *testing.T) {
	cfgs := clusterConfigs(t, 2, func(cfg *config.Config) { cfg.Log.Level = "info" })
	var logs lockedBuffer
	first, err := node.Start(cfgs[0], slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Kill() })
	second, err := node.Start(cfgs[1], testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Kill() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "component=transport") {
		if time.Now().After(deadline) {
			t.Fatalf("no transport line logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, "component=transport") {
			continue
		}
		if strings.Count(line, "component=") != 1 || strings.Count(line, "node=")+strings.Count(line, "node_id=") != 1 {
			t.Errorf("transport line repeats its attributes: %s", line)
		}
	}
}
