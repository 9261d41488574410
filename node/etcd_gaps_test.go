package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/node/mvcc"
)

// A put or txn over the limits gets etcd's "request is too large" through clientv3, on the
// leader and through a follower, and nothing of it is applied: a key or a value over its own
// limit, and a transaction whose puts are each within the limits but together over
// limits.max_request_bytes (so it is the request, not a field, that is refused).
func TestEtcdRequestTooLarge(t *testing.T) {
	const maxKey, maxValue, maxRequest = 64, 1024, 4096
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		cfg.Limits.MaxKeyBytes, cfg.Limits.MaxValueBytes, cfg.Limits.MaxRequestBytes = maxKey, maxValue, maxRequest
	})
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	ctx := ctxT(t)
	value := func(n int) string { return strings.Repeat("v", n) }
	manyPuts := make([]clientv3.Op, 6) // 6 × ~1 KiB: every put fits, the whole is over 4 KiB
	for i := range manyPuts {
		manyPuts[i] = clientv3.OpPut(fmt.Sprintf("big/%d", i), value(maxValue-10))
	}
	for _, at := range []int{leader, follower} {
		cli := etcdClient(t, c.cfgs[at].Listen.Client)
		before, err := cli.Get(ctx, "big/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			do   func() error
		}{
			{"put, value over max_value_bytes", func() error { _, err := cli.Put(ctx, "big/v", value(maxValue+1)); return err }},
			{"put, key over max_key_bytes", func() error { _, err := cli.Put(ctx, "big/"+strings.Repeat("k", maxKey), "v"); return err }},
			{"txn, a value over max_value_bytes in a nested txn", func() error {
				_, err := cli.Txn(ctx).Then(clientv3.OpPut("big/a", "1"),
					clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("big/n", value(maxValue+1))}, nil)).Commit()
				return err
			}},
			{"txn, puts within the limits, the request over max_request_bytes", func() error {
				_, err := cli.Txn(ctx).Then(manyPuts...).Commit()
				return err
			}},
			{"txn failure branch over max_request_bytes", func() error {
				_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("big/none"), ">", 0)).Else(manyPuts...).Commit()
				return err
			}},
		} {
			if err := tc.do(); !errors.Is(err, rpctypes.ErrRequestTooLarge) {
				t.Errorf("node %d, %s: got %v, want %v", at+1, tc.name, err, rpctypes.ErrRequestTooLarge)
			}
		}
		after, err := cli.Get(ctx, "big/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if after.Header.Revision != before.Header.Revision || len(after.Kvs) != len(before.Kvs) {
			t.Fatalf("node %d: refused requests changed the store: revision %d → %d, %d → %d keys",
				at+1, before.Header.Revision, after.Header.Revision, len(before.Kvs), len(after.Kvs))
		}
		// A request at the limits is served.
		if _, err := cli.Txn(ctx).Then(manyPuts[:3]...).Commit(); err != nil {
			t.Fatalf("node %d: a txn within the limits: %v", at+1, err)
		}
		if _, err := cli.Put(ctx, "big/max", value(maxValue)); err != nil {
			t.Fatalf("node %d: a put of a value at max_value_bytes: %v", at+1, err)
		}
	}
}

// Maintenance.Snapshot through clientv3 streams georaft's own snapshot format (docs/etcd.md):
// node/mvcc restores it into the same state the member serves, with the same HashKV hash,
// revision and keys. The state is over 1 MiB, so the stream comes in several messages.
func TestEtcdSnapshotRestores(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	cli := etcdClient(t, c.cfgs[follower].Listen.Client)
	ctx := ctxT(t)
	big := strings.Repeat("x", 700<<10)
	for i := 0; i < 3; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("snap/big%d", i), big+fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("snap/k%02d", i), fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "snap/k05"); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "snap/leased", "l", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	// The follower has applied everything (a linearizable read through it waits for that),
	// and nothing writes from here on.
	last, err := cli.Get(ctx, "snap/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	endpoint := c.cfgs[follower].Listen.Client
	waitFor(t, 10*time.Second, "the follower applies the last write", func() bool {
		r, err := cli.Get(ctx, "snap/leased", clientv3.WithSerializable())
		return err == nil && r.Header.Revision == last.Header.Revision
	})
	want, err := cli.HashKV(ctx, endpoint, 0)
	if err != nil {
		t.Fatal(err)
	}

	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("read the snapshot stream: %v", err)
	}
	if len(blob) < 2<<20 || !bytes.HasPrefix(blob, []byte("GRMV")) {
		t.Fatalf("snapshot is %d bytes starting %q: want georaft's format (GRMV) holding the 2 MiB of values", len(blob), blob[:min(len(blob), 4)])
	}

	store, err := mvcc.Open(t.TempDir(), mvcc.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Restore(bytes.NewReader(blob)); err != nil {
		t.Fatalf("restore the snapshot etcd's Maintenance.Snapshot streamed: %v", err)
	}
	h, _, err := store.HashAt()
	if err != nil {
		t.Fatal(err)
	}
	if got := uint32(h ^ h>>32); got != want.Hash || store.Rev() != want.HashRevision || store.Rev() != last.Header.Revision {
		t.Errorf("restored: hash %d at revision %d; the member's HashKV: %d at revision %d (last write %d)",
			got, store.Rev(), want.Hash, want.HashRevision, last.Header.Revision)
	}
	restored, err := store.Range(&etcdpb.RangeRequest{Key: []byte("snap/"), RangeEnd: []byte("snap0")})
	if err != nil {
		t.Fatal(err)
	}
	if len(restored.Kvs) != len(last.Kvs) {
		t.Fatalf("restored %d keys, the member has %d", len(restored.Kvs), len(last.Kvs))
	}
	for i, kv := range last.Kvs {
		r := restored.Kvs[i]
		if !bytes.Equal(r.Key, kv.Key) || !bytes.Equal(r.Value, kv.Value) || r.ModRevision != kv.ModRevision ||
			r.CreateRevision != kv.CreateRevision || r.Version != kv.Version || r.Lease != kv.Lease {
			t.Errorf("restored key %s (rev %d, lease %x), the member's %s (rev %d, lease %x)", r.Key, r.ModRevision, r.Lease, kv.Key, kv.ModRevision, kv.Lease)
		}
	}
}

// A serializable read at a follower that has not heard from a leader within
// timing.max_staleness answers Unavailable (a Range and a read-only Txn alike), and answers
// again once the cluster is whole.
func TestEtcdSerializableReadRefusedWhenCutOff(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) { cfg.Timing.MaxStaleness = time.Second })
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	kv := etcdpb.NewKVClient(c.conns[follower])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := kv.Put(ctx, &etcdpb.PutRequest{Key: []byte("cut"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	rangeReq := &etcdpb.RangeRequest{Key: []byte("cut"), Serializable: true}
	txnReq := &etcdpb.TxnRequest{Success: []*etcdpb.RequestOp{{Request: &etcdpb.RequestOp_RequestRange{RequestRange: rangeReq}}}}
	read := func() (string, error) {
		r, err := kv.Range(ctx, rangeReq)
		if err != nil {
			return "", err
		}
		if _, err := kv.Txn(ctx, txnReq); err != nil {
			return "", fmt.Errorf("txn: %w", err)
		}
		if len(r.Kvs) != 1 {
			return "", nil
		}
		return string(r.Kvs[0].Value), nil
	}
	waitFor(t, 10*time.Second, "the follower serves the write", func() bool { v, err := read(); return err == nil && v == "v" })

	for _, i := range others(3, follower) {
		c.kill(i)
	}
	var cutErr error
	waitFor(t, 20*time.Second, "the cut-off follower refuses serializable reads", func() bool {
		_, cutErr = kv.Range(ctx, rangeReq)
		return cutErr != nil
	})
	if status.Code(cutErr) != codes.Unavailable || !strings.Contains(cutErr.Error(), "max_staleness") {
		t.Fatalf("a serializable range on the cut-off follower: %v, want Unavailable naming max_staleness", cutErr)
	}
	if _, err := kv.Txn(ctx, txnReq); status.Code(err) != codes.Unavailable {
		t.Fatalf("a serializable read-only txn on the cut-off follower: %v, want Unavailable", err)
	}

	for _, i := range others(3, follower) {
		c.start(i)
	}
	c.waitLeader(20 * time.Second)
	waitFor(t, 20*time.Second, "the healed follower serves serializable reads again", func() bool {
		v, err := read()
		return err == nil && v == "v"
	})
}

// The etcd API's metrics, scraped after matching traffic: op="etcd.*" request counts and
// errors on the member asked, georaft_etcd_forwarded_total by code on a follower that passed
// requests on, and georaft_etcd_watchers while a watch is open on it and after it closes.
func TestEtcdMetricsScraped(t *testing.T) {
	tune, metricsAddrs := withMetricsListeners(t, 3, nil)
	c := newTestCluster(t, 3, tune)
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	fm, lm := metricsAddrs[follower], metricsAddrs[leader]
	cli := etcdClient(t, c.cfgs[follower].Listen.Client)
	ctx := ctxT(t)
	count := func(addr, series string, labels ...string) int { return scrapeCount(t, addr, series, labels...) }
	const (
		reqs      = "georaft_request_duration_seconds_count"
		errs      = "georaft_request_errors_total"
		forwarded = "georaft_etcd_forwarded_total"
		watchers  = "georaft_etcd_watchers"
	)
	fwdOK, fwdNotFound := count(fm, forwarded, `code="OK"`), count(fm, forwarded, `code="NotFound"`)
	puts, leaderPuts := count(fm, reqs, `op="etcd.put"`), count(lm, reqs, `op="etcd.put"`)
	txns, ranges, deletes := count(fm, reqs, `op="etcd.txn"`), count(fm, reqs, `op="etcd.range"`), count(fm, reqs, `op="etcd.delete_range"`)
	grants, putErrs := count(fm, reqs, `op="etcd.lease_grant"`), count(fm, errs, `op="etcd.put"`, `code="NotFound"`)

	if _, err := cli.Put(ctx, "m/a", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut("m/b", "2")).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "m/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "m/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Grant(ctx, 60); err != nil {
		t.Fatal(err)
	}
	// Refused by the leader: forwarded, ended NotFound, counted as an error, not a request.
	if _, err := cli.Put(ctx, "m/c", "3", clientv3.WithLease(0x7777)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("put with a missing lease: %v", err)
	}

	for _, m := range []struct {
		addr, series string
		labels       []string
		want         int
	}{
		{fm, reqs, []string{`op="etcd.put"`}, puts + 1},
		{lm, reqs, []string{`op="etcd.put"`}, leaderPuts + 1},
		{fm, reqs, []string{`op="etcd.txn"`}, txns + 1},
		{fm, reqs, []string{`op="etcd.range"`}, ranges + 1},
		{fm, reqs, []string{`op="etcd.delete_range"`}, deletes + 1},
		{fm, reqs, []string{`op="etcd.lease_grant"`}, grants + 1},
		{fm, errs, []string{`op="etcd.put"`, `code="NotFound"`}, putErrs + 1},
		// put, txn, range, delete, grant forwarded and answered; the put with a missing lease not.
		{fm, forwarded, []string{`code="OK"`}, fwdOK + 5},
		{fm, forwarded, []string{`code="NotFound"`}, fwdNotFound + 1},
	} {
		if got := count(m.addr, m.series, m.labels...); got != m.want {
			t.Errorf("%s%v at %s: %d, want %d", m.series, m.labels, m.addr, got, m.want)
		}
	}
	if got := count(lm, forwarded, `code="OK"`); got != 0 {
		t.Errorf("the leader forwarded %d requests; it serves them itself", got)
	}

	if got := count(fm, watchers, `node=`); got != 0 {
		t.Fatalf("%d watchers before any watch", got)
	}
	wctx, cancel := context.WithCancel(ctx)
	wc := cli.Watch(wctx, "m/", clientv3.WithPrefix())
	if _, err := cli.Put(ctx, "m/w", "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case wr := <-wc:
		if wr.Err() != nil || len(wr.Events) != 1 {
			t.Fatalf("watch: %+v %v", wr, wr.Err())
		}
	case <-ctx.Done():
		t.Fatal("the watch saw nothing")
	}
	if got := count(fm, watchers, `node=`); got != 1 {
		t.Errorf("%d watchers on the follower with one watch open, want 1", got)
	}
	if got := count(lm, watchers, `node=`); got != 0 {
		t.Errorf("%d watchers on the leader: the watch is the follower's", got)
	}
	cancel()
	waitFor(t, 10*time.Second, "the closed watch leaves georaft_etcd_watchers", func() bool { return count(fm, watchers, `node=`) == 0 })
}

// scrapeCount reads a node's /metrics: the sum of the samples of series whose labels include
// every one of labels (`op="etcd.put"`), 0 when there is none.
func scrapeCount(t *testing.T, addr, series string, labels ...string) int {
	t.Helper()
	code, body, err := httpGet(addr, "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("scrape %s: %d %v", addr, code, err)
	}
	total := 0
lines:
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, series+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		var n int
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%d", &n); err != nil {
			t.Fatalf("scrape %s: %q: %v", addr, line, err)
		}
		total += n
	}
	return total
}

func httpGet(addr, path string) (int, string, error) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
