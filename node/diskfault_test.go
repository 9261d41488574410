package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/node/mvcc"
	"github.com/georaft/georaft/node/wal"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Disk faults on one node of a real three-node cluster. Every node runs on a wal.FaultFS (a
// pass-through until armed), so the test can arm whichever node turns out to lead.

// faultCluster is a three-node cluster whose nodes each have a FaultFS and a metrics listener.
type faultCluster struct {
	*testCluster
	faults  []*wal.FaultFS
	metrics []string
}

func newFaultCluster(t *testing.T, tune func(*config.Config)) *faultCluster {
	t.Helper()
	const n = 3
	withMetrics, metrics := withMetricsListeners(t, n, tune)
	faults := make([]*wal.FaultFS, n)
	for i := range faults {
		faults[i] = wal.NewFaultFS(nil)
	}
	c := newTestClusterWith(t, n, withMetrics, func(i int) node.Options {
		return node.Options{Logger: testLogger(), FS: faults[i]}
	})
	return &faultCluster{testCluster: c, faults: faults, metrics: metrics}
}

// writeAcked makes n acknowledged writes through node i.
func (c *testCluster) writeAcked(i int, prefix string, n int) []ackedWrite {
	c.t.Helper()
	var acked []ackedWrite
	for k := 0; k < n; k++ {
		w := ackedWrite{key: fmt.Sprintf("%s-%03d", prefix, k), value: fmt.Sprintf("value-%s-%d", prefix, k)}
		resp, err := c.set(i, w.key, w.value)
		if err != nil {
			c.t.Fatalf("write %s through node %d: %v", w.key, i+1, err)
		}
		w.index = resp.Index
		acked = append(acked, w)
	}
	return acked
}

// checkFailedStop asserts everything a node that failed stop must show: /healthz and /readyz
// 503, Status naming the failure, and every client operation refused for the disk.
func (c *faultCluster) checkFailedStop(i int, cause string) *georaftv1.StatusResponse {
	c.t.Helper()
	body := waitHTTPStatus(c.t, c.metrics[i], "/healthz", http.StatusServiceUnavailable, 10*time.Second)
	if !strings.Contains(body, cause) {
		c.t.Errorf("node %d /healthz body %q does not name the cause %q", i+1, body, cause)
	}
	if code, _, err := httpStatus(c.t, c.metrics[i], "/readyz"); err != nil || code != http.StatusServiceUnavailable {
		c.t.Errorf("node %d /readyz answered %d (err %v), want 503", i+1, code, err)
	}
	st := c.mustStatus(i)
	if !strings.Contains(st.Failure, cause) {
		c.t.Fatalf("node %d Status.failure = %q, want it to name %q", i+1, st.Failure, cause)
	}
	_, err := c.set(i, "written-to-a-failed-node", "x")
	checkRefusedForDisk(c.t, fmt.Sprintf("a write to failed node %d", i+1), err)
	for _, mode := range allModes {
		_, err := c.get(i, "written-to-a-failed-node", mode)
		checkRefusedForDisk(c.t, fmt.Sprintf("a %v read on failed node %d", mode, i+1), err)
	}
	return st
}

// checkStoppedParticipating writes through the new leader and asserts that the failed old
// leader's view (term, commit, applied) stays frozen while the rest of the cluster moves on.
func (c *faultCluster) checkStoppedParticipating(failed, leader int, frozen *georaftv1.StatusResponse) []ackedWrite {
	c.t.Helper()
	more := c.writeAcked(leader, "after-failure", 10)
	now := c.mustStatus(leader)
	if now.Term <= frozen.Term {
		c.t.Errorf("the new leader's term %d is not above the failed leader's %d", now.Term, frozen.Term)
	}
	again := c.mustStatus(failed)
	if again.Term != frozen.Term || again.CommitIndex != frozen.CommitIndex || again.AppliedIndex != frozen.AppliedIndex {
		c.t.Fatalf("failed node %d still participates: term/commit/applied went from %d/%d/%d to %d/%d/%d",
			failed+1, frozen.Term, frozen.CommitIndex, frozen.AppliedIndex, again.Term, again.CommitIndex, again.AppliedIndex)
	}
	if again.CommitIndex >= now.CommitIndex {
		c.t.Fatalf("failed node %d reports commit %d, the cluster only %d: it cannot have stopped", failed+1, again.CommitIndex, now.CommitIndex)
	}
	return more
}

// An fsync failure on the leader: the write whose fsync failed is never acknowledged, the
// node fails stop (health 503, Status names the failure, nothing served), the other two
// elect a new leader and keep serving every acknowledged write.
func TestLeaderFsyncFailureFailsStop(t *testing.T) {
	c := newFaultCluster(t, nil)
	leader := c.waitLeader(10 * time.Second)
	acked := c.writeAcked(leader, "before", 20)

	c.faults[leader].FailSyncAfter(0, syscall.EIO)
	_, err := c.set(leader, "fsync-fails-here", "never-acknowledged")
	checkRefusedForDisk(t, "the write whose fsync failed", err)
	frozen := c.checkFailedStop(leader, syscall.EIO.Error())

	survivors := others(3, leader)
	next := c.waitLeaderAmong(survivors, 15*time.Second)
	for _, i := range survivors {
		if code, _, err := httpStatus(t, c.metrics[i], "/healthz"); err != nil || code != http.StatusOK {
			t.Fatalf("healthy node %d /healthz answered %d (err %v)", i+1, code, err)
		}
	}
	acked = append(acked, c.checkStoppedParticipating(leader, next, frozen)...)
	for _, i := range survivors {
		c.waitApplied(i, acked[len(acked)-1].index, 10*time.Second)
	}
	c.checkAckedReadable(next, acked)

	if err := c.killFailed(leader); err == nil || !errors.Is(err, syscall.EIO) {
		t.Errorf("stopping the failed node reported %v, want the fsync error it failed with", err)
	}
}

// An fsync failure on a follower: the follower fails stop and acknowledges nothing more to
// the leader; the leader keeps committing with the remaining quorum.
func TestFollowerFsyncFailureFailsStop(t *testing.T) {
	c := newFaultCluster(t, nil)
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	acked := c.writeAcked(leader, "before", 10)
	c.waitApplied(follower, acked[len(acked)-1].index, 10*time.Second)

	c.faults[follower].FailSyncAfter(0, syscall.EIO)
	// The next append the follower must persist fails its fsync. The writes still commit
	// through the leader and the other follower.
	acked = append(acked, c.writeAcked(leader, "during", 5)...)
	frozen := c.checkFailedStop(follower, syscall.EIO.Error())

	// The leader's view of the failed follower stops moving: it acknowledges nothing that
	// it could not make durable. (A new leader would start from zero, which is no advance.)
	leader = c.waitLeaderAmong(others(3, follower), 10*time.Second)
	matchBefore := peerMatch(t, c.mustStatus(leader), uint64(follower+1))
	if matchBefore > frozen.LastIndex {
		t.Fatalf("the leader has match %d for failed node %d, which holds only up to %d", matchBefore, follower+1, frozen.LastIndex)
	}
	acked = append(acked, c.writeAcked(leader, "after", 10)...)
	st := c.mustStatus(leader)
	if got := peerMatch(t, st, uint64(follower+1)); got > matchBefore {
		t.Fatalf("failed node %d acknowledged appends after failing: leader's match moved from %d to %d", follower+1, matchBefore, got)
	}
	if st.CommitIndex < acked[len(acked)-1].index {
		t.Fatalf("leader commit %d is behind its own acknowledged write %d", st.CommitIndex, acked[len(acked)-1].index)
	}
	again := c.mustStatus(follower)
	if again.AppliedIndex != frozen.AppliedIndex || again.CommitIndex != frozen.CommitIndex {
		t.Fatalf("failed follower moved: commit/applied %d/%d -> %d/%d", frozen.CommitIndex, frozen.AppliedIndex, again.CommitIndex, again.AppliedIndex)
	}
	c.checkAckedReadable(leader, acked)
	c.killFailed(follower)
}

func peerMatch(t *testing.T, st *georaftv1.StatusResponse, id uint64) uint64 {
	t.Helper()
	for _, p := range st.Peers {
		if p.Id == id {
			return p.MatchIndex
		}
	}
	t.Fatalf("node %d's status lists no peer %d", st.Id, id)
	return 0
}

// diskFullScenario fills the disk under node full (made leader first) until a write fails,
// and then checks what a full disk must never do: acknowledge that write, or lose or corrupt
// anything acknowledged before it. free makes room again; the node then restarts and
// recovers every write it acknowledged, from its own WAL (a torn last record at most).
func diskFullScenario(t *testing.T, c *testCluster, full int, arm, free func(), restartOpts node.Options) {
	c.makeLeader(full, 20*time.Second)
	acked := c.writeAcked(full, "small", 5)
	arm()

	value := strings.Repeat("v", 8<<10)
	var refusal error
	for k := 0; k < 5000 && refusal == nil; k++ {
		w := ackedWrite{key: fmt.Sprintf("fill-%05d", k), value: fmt.Sprintf("%05d-%s", k, value)}
		resp, err := c.set(full, w.key, w.value)
		if err != nil {
			refusal = err
			break
		}
		w.index = resp.Index
		acked = append(acked, w)
	}
	if refusal == nil {
		t.Fatal("the disk never filled up: 5000 writes of 8 KiB succeeded")
	}
	checkRefusedForDisk(t, "the write that found the disk full", refusal)
	if !strings.Contains(refusal.Error(), syscall.ENOSPC.Error()) && !isDeadline(refusal) {
		t.Errorf("the refusal does not say the disk is full: %v", refusal)
	}
	t.Logf("disk full after %d acknowledged writes: %v", len(acked), shortErr(refusal))
	st := c.mustStatus(full)
	if !strings.Contains(st.Failure, syscall.ENOSPC.Error()) {
		t.Fatalf("Status.failure of the full node = %q, want it to say %q", st.Failure, syscall.ENOSPC.Error())
	}

	// The rest of the cluster carries on with everything acknowledged.
	survivors := others(len(c.servers), full)
	next := c.waitLeaderAmong(survivors, 15*time.Second)
	acked = append(acked, c.writeAcked(next, "while-full-node-down", 5)...)
	c.checkAckedReadable(next, acked)

	c.killFailed(full)
	free()

	// The node's own WAL holds every write it acknowledged as leader: nothing was corrupted
	// by the failed write, which at most left a torn last record.
	dataDir := c.cfgs[full].Node.DataDir
	rec, err := wal.Inspect(filepath.Join(dataDir, "wal"), nil)
	if err != nil {
		t.Fatalf("the full node's WAL does not read back: %v", err)
	}
	if rec.TornTail != nil {
		t.Logf("the failed write left a torn tail, as allowed: %v", rec.TornTail)
	}
	byIndex := map[uint64][]byte{}
	for _, e := range rec.Entries {
		byIndex[e.Index] = e.Data
	}
	for _, w := range acked {
		if strings.HasPrefix(w.key, "while-full-node-down") {
			continue // acknowledged by the new leader after the full node stopped
		}
		data, ok := byIndex[w.index]
		if !ok {
			t.Fatalf("acknowledged %s at index %d is not in the full node's WAL (entries %d..%d)",
				w.key, w.index, firstIndex(rec), lastIndex(rec))
		}
		mc, err := mvcc.Decode(data)
		put := mc.Txn.GetSuccess()
		var cmd *etcdpb.PutRequest
		if len(put) == 1 {
			cmd = put[0].GetRequestPut()
		}
		if err != nil || string(cmd.GetKey()) != w.key || !bytes.Equal(cmd.GetValue(), []byte(w.value)) {
			t.Fatalf("index %d in the full node's WAL is %v (err %v), want SET %s", w.index, cmd, err, w.key)
		}
	}

	// Restarted with room on the disk, the node recovers, rejoins and catches up.
	c.startWith(full, restartOpts)
	leaderNow := c.waitLeader(15 * time.Second)
	st = c.mustStatus(leaderNow)
	c.waitApplied(full, st.CommitIndex, 15*time.Second)
	if st := c.mustStatus(full); st.Failure != "" {
		t.Fatalf("the restarted node still reports a failure: %s", st.Failure)
	}
	for _, w := range acked {
		got, err := c.get(full, w.key, georaftv1.ReadMode_READ_MODE_STALE)
		if err != nil || !got.Found || string(got.Value) != w.value {
			t.Fatalf("after restart node %d lost %s: found=%v err=%v", full+1, w.key, got.GetFound(), err)
		}
	}
	if _, err := c.set(leaderNow, "after-recovery", "ok"); err != nil {
		t.Fatalf("a write after the full node recovered: %v", err)
	}
}

func firstIndex(rec *wal.Recovered) uint64 {
	if len(rec.Entries) == 0 {
		return 0
	}
	return rec.Entries[0].Index
}

func lastIndex(rec *wal.Recovered) uint64 {
	if len(rec.Entries) == 0 {
		return 0
	}
	return rec.Entries[len(rec.Entries)-1].Index
}

// Disk full, injected: writes through the FaultFS fail with ENOSPC after a budget, part way
// through a record, as a full disk does.
func TestDiskFullWithFaultFS(t *testing.T) {
	c := newFaultCluster(t, nil)
	const full = 0
	diskFullScenario(t, c.testCluster, full,
		func() { c.faults[full].FailWritesAfter(256 << 10) },
		func() { c.faults[full].Heal() },
		node.Options{Logger: testLogger(), FS: c.faults[full]})
}

// Disk full, for real: node 1's data directory is on a 2 MiB tmpfs, most of it taken by a
// ballast file that is deleted to free space before the restart.
func TestDiskFullOnTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a size-limited tmpfs needs root (TestDiskFullWithFaultFS covers ENOSPC without it)")
	}
	mnt := filepath.Join(t.TempDir(), "small-disk")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("skipped: cannot mount a 2 MiB tmpfs at %s (%v: %s); TestDiskFullWithFaultFS covers ENOSPC", mnt, err, bytes.TrimSpace(out))
	}
	// Registered before the cluster, so it runs after the cluster's own cleanup stopped node 1.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, bytes.Repeat([]byte{0xba}, 1<<20), 0o644); err != nil {
		t.Fatalf("write ballast: %v", err)
	}
	const full = 0
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		if cfg.Node.ID == full+1 {
			cfg.Node.DataDir = filepath.Join(mnt, "node1")
		}
	})
	diskFullScenario(t, c, full,
		func() {},
		func() {
			if err := os.Remove(ballast); err != nil {
				t.Fatalf("free space: %v", err)
			}
		},
		node.Options{Logger: testLogger()})
}

// A node whose state machine engine is gone after its log was compacted refuses start-up,
// naming the snapshot it would need: the log before it was compacted away, so the node
// cannot rebuild its state from the log.
func TestLostStateRefusesStartup(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) { cfg.Storage.SnapshotEntries = 20 })
	leader := c.waitLeader(10 * time.Second)
	acked := c.writeAcked(leader, "snap", 60)
	c.waitApplied(0, acked[len(acked)-1].index, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for c.mustStatus(0).SnapshotIndex == 0 {
		if time.Now().After(deadline) {
			t.Fatal("node 1 compacted no log after 60 writes with storage.snapshot_entries 20")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range c.servers {
		c.kill(i)
	}
	rec, err := wal.Inspect(filepath.Join(c.cfgs[0].Node.DataDir, "wal"), nil)
	if err != nil || rec.Snapshot.Index == 0 {
		t.Fatalf("node 1's WAL records no snapshot: %+v %v", rec, err)
	}
	if err := os.RemoveAll(filepath.Join(c.cfgs[0].Node.DataDir, "state")); err != nil {
		t.Fatal(err)
	}
	_, err = node.Start(c.cfgs[0], testLogger())
	if err == nil {
		t.Fatal("a node whose state is lost behind a compacted log started")
	}
	if want := fmt.Sprintf("snapshot %d", rec.Snapshot.Index); !strings.Contains(err.Error(), want) {
		t.Fatalf("the refusal does not name %s: %v", want, err)
	}
	t.Logf("start-up refused: %v", err)
	// The other two still hold every acknowledged write.
	c.start(1)
	c.start(2)
	next := c.waitLeaderAmong([]int{1, 2}, 15*time.Second)
	c.checkAckedReadable(next, acked)
}
