package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Helpers shared by the hardening tests (disk faults, TLS, bad input, abusive clients). They
// extend the testCluster harness of cluster_test.go rather than replacing it.

// newTestClusterWith is newTestCluster with per-node start options (a fault-injecting
// filesystem, say). optsFor may be nil.
func newTestClusterWith(t *testing.T, n int, tune func(*config.Config), optsFor func(i int) node.Options) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cfgs: clusterConfigs(t, n, tune)}
	c.servers = make([]*node.Server, n)
	c.conns = make([]*grpc.ClientConn, n)
	c.clients = make([]georaftv1.KVServiceClient, n)
	t.Cleanup(c.close)
	for i := range c.cfgs {
		opts := node.Options{Logger: testLogger()}
		if optsFor != nil {
			opts = optsFor(i)
		}
		c.startWith(i, opts)
		conn, err := grpc.NewClient(c.cfgs[i].Listen.Client, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		c.conns[i] = conn
		c.clients[i] = georaftv1.NewKVServiceClient(conn)
	}
	return c
}

func (c *testCluster) startWith(i int, opts node.Options) {
	c.t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	srv, err := node.StartWith(c.cfgs[i], opts)
	if err != nil {
		c.t.Fatalf("start node %d: %v", i+1, err)
	}
	c.servers[i] = srv
}

// killFailed stops a node that failed stop after a storage error. Its Kill reports that
// error again (the WAL stays poisoned), which is expected and returned for inspection.
func (c *testCluster) killFailed(i int) error {
	c.t.Helper()
	if c.servers[i] == nil {
		return nil
	}
	err := c.servers[i].Kill()
	c.servers[i] = nil
	return err
}

// withMetricsListeners gives every node a metrics listener (for /healthz) on a free port.
// It returns the tune function and the addresses, by node index.
func withMetricsListeners(t *testing.T, n int, then func(*config.Config)) (func(*config.Config), []string) {
	t.Helper()
	addrs, err := clusterkit.FreeAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return func(cfg *config.Config) {
		cfg.Listen.Metrics = addrs[cfg.Node.ID-1]
		if then != nil {
			then(cfg)
		}
	}, addrs
}

// httpStatus GETs path on a metrics listener and returns the status code and body.
func httpStatus(t testing.TB, addr, path string) (int, string, error) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}

// waitHTTPStatus waits until path on addr answers want, and returns the body.
func waitHTTPStatus(t testing.TB, addr, path string, want int, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		code, body, err := httpStatus(t, addr, path)
		if err == nil && code == want {
			return body
		}
		last = fmt.Sprintf("code %d body %q err %v", code, body, err)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s%s did not answer %d within %v (last: %s)", addr, path, want, timeout, last)
	return ""
}

// waitLeaderAmong waits until every node in members agrees on one leader that is itself a
// member, and returns its index. Nodes outside members (a failed node still reporting its
// old role, say) are not asked.
func (c *testCluster) waitLeaderAmong(members []int, timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		leader, agreed := uint64(0), true
		for _, i := range members {
			st, err := c.status(i)
			if err != nil {
				agreed, last = false, err.Error()
				break
			}
			if st.LeaderId == 0 || (leader != 0 && st.LeaderId != leader) {
				agreed, last = false, fmt.Sprintf("node %d sees leader %d", st.Id, st.LeaderId)
				break
			}
			leader = st.LeaderId
		}
		if agreed && leader != 0 && containsIndex(members, int(leader-1)) {
			return int(leader - 1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("nodes %v agreed on no leader among them within %v (last: %s)", indexesToIDs(members), timeout, last)
	return -1
}

func (c *testCluster) status(i int) (*georaftv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.clients[i].Status(ctx, &georaftv1.StatusRequest{})
}

func (c *testCluster) mustStatus(i int) *georaftv1.StatusResponse {
	c.t.Helper()
	st, err := c.status(i)
	if err != nil {
		c.t.Fatalf("status of node %d: %v", i+1, err)
	}
	return st
}

// makeLeader moves leadership to node target (an index) and waits until every node agrees.
func (c *testCluster) makeLeader(target int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		leader := c.waitLeader(time.Until(deadline))
		if leader == target {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := c.clients[leader].TransferLeader(ctx, &georaftv1.TransferLeaderRequest{TargetId: uint64(target + 1)})
		cancel()
		if err != nil {
			c.t.Logf("transfer to node %d through node %d: %v (retrying)", target+1, leader+1, err)
			time.Sleep(50 * time.Millisecond)
		}
	}
	c.t.Fatalf("node %d did not become leader within %v", target+1, timeout)
}

func containsIndex(list []int, i int) bool {
	for _, x := range list {
		if x == i {
			return true
		}
	}
	return false
}

func indexesToIDs(list []int) []int {
	ids := make([]int, len(list))
	for k, i := range list {
		ids[k] = i + 1
	}
	return ids
}

// others lists the node indexes of an n-node cluster except skip.
func others(n, skip int) []int {
	var list []int
	for i := 0; i < n; i++ {
		if i != skip {
			list = append(list, i)
		}
	}
	return list
}

// errorReason is the google.rpc.ErrorInfo reason of an UNAVAILABLE answer, or "".
func errorReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}

// badRequestField is the first field named by a BadRequest detail, or "".
func badRequestField(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			return br.FieldViolations[0].Field
		}
	}
	return ""
}

// checkRefusedForDisk fails unless err is what a node that failed stop may answer: UNAVAILABLE
// with reason DISK_FAILED, or a deadline. Success is never acceptable.
func checkRefusedForDisk(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded on a node whose disk failed", what)
	}
	switch status.Code(err) {
	case codes.Unavailable:
		if reason := errorReason(err); reason != node.ReasonDiskFailed {
			t.Fatalf("%s: UNAVAILABLE with reason %q, want %s: %v", what, reason, node.ReasonDiskFailed, err)
		}
	case codes.DeadlineExceeded:
	default:
		t.Fatalf("%s: got %v, want UNAVAILABLE/%s or a deadline", what, err, node.ReasonDiskFailed)
	}
}

// ackedWrite is a write the cluster acknowledged: it must survive every later fault.
type ackedWrite struct {
	key, value string
	index      uint64
}

// checkAckedReadable reads every acknowledged write on node i with a linearizable read.
func (c *testCluster) checkAckedReadable(i int, acked []ackedWrite) {
	c.t.Helper()
	for _, w := range acked {
		got, err := c.get(i, w.key, georaftv1.ReadMode_READ_MODE_INDEX)
		if err != nil {
			c.t.Fatalf("read of acknowledged %s on node %d: %v", w.key, i+1, err)
		}
		if !got.Found || string(got.Value) != w.value {
			c.t.Fatalf("acknowledged write %s (index %d) lost on node %d: found=%v value %.40q",
				w.key, w.index, i+1, got.Found, got.Value)
		}
	}
}

// isDeadline reports a client-side or server-side deadline.
func isDeadline(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded
}

// shortErr trims an error for a log line.
func shortErr(err error) string {
	s := fmt.Sprint(err)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.ReplaceAll(s, "\n", " ")
}
