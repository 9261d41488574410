package clusterkit_test

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// replaceMB sizes TestReplaceNodeHoldingData; 0 (the default, so make test) skips it.
var (
	replaceMB              = flag.Int("replace.mb", 0, "MiB of data the cluster holds when TestReplaceNodeHoldingData replaces a follower (0: skip)")
	replaceSnapshotEntries = flag.Uint64("replace.snapshot-entries", 500, "storage.snapshot_entries of the cluster TestReplaceNodeHoldingData replaces a node in (1 GiB is 2048 entries)")
)

// TestReplaceNodeHoldingData measures how long replacing a node takes once the cluster holds
// -replace.mb MiB: a new node joins, receives the leader's snapshot and the log, catches up,
// and takes a follower's place in one change. It reports the time and the writes' longest
// gap meanwhile (a light writer keeps going). Run it alone, under the heavy lock:
//
//	flock /tmp/georaft-heavy.lock go test ./clusterkit -run TestReplaceNodeHoldingData -replace.mb 1024 -v -timeout 30m
func TestReplaceNodeHoldingData(t *testing.T) {
	if *replaceMB <= 0 {
		t.Skip("set -replace.mb to run (a measurement, not a check)")
	}
	ctx := context.Background()
	cl := kittest.Start(t, clusterkit.Spec{Size: 3, Configure: func(c *config.Config) {
		// Compact during the load, so the new node needs the snapshot, not the log alone.
		c.Storage.SnapshotEntries = *replaceSnapshotEntries
	}})
	leader := kittest.WaitLeader(t, cl)
	cli := kittest.Client(t, cl, "", time.Minute)

	const valueBytes = 512 << 10
	values := *replaceMB * (1 << 20) / valueBytes
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := make([]byte, valueBytes)
			for {
				i := next.Add(1) - 1
				if i >= int64(values) {
					return
				}
				rand.Read(v)
				if _, err := cli.Set(ctx, fmt.Sprintf("bulk/%07d", i), v); err != nil {
					t.Errorf("write %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("loaded %d MiB (%d values of %d KiB) in %s", *replaceMB, values, valueBytes>>10, time.Since(start).Round(time.Second))

	// A light writer measures what the replace costs the clients.
	stop := make(chan struct{})
	var gapMu sync.Mutex
	var worst time.Duration
	var writerDone sync.WaitGroup
	writerDone.Add(1)
	go func() {
		defer writerDone.Done()
		last := time.Now()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := cli.Set(ctx, fmt.Sprintf("during/%d", k%100), []byte("x")); err == nil {
				gapMu.Lock()
				worst = max(worst, time.Since(last))
				gapMu.Unlock()
				last = time.Now()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	victim := leader%3 + 1
	begin := time.Now()
	n, err := cl.AddNode(cl.Node(victim).Region, func(c *config.Config) { c.Cluster.Replaces = victim })
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.StartNode(n.ID); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitRole(ctx, victim, 30*time.Minute, georaftv1.MemberRole_MEMBER_ROLE_REMOVED); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	close(stop)
	writerDone.Wait()
	dump, _ := os.ReadFile(filepath.Join(n.DataPath, "dump.txt"))
	t.Logf("replaced node %d by node %d holding %d MiB in %s, with %d snapshot transfer(s); longest gap between acknowledged writes meanwhile: %s; new node's data directory: %s",
		victim, n.ID, *replaceMB, took.Round(100*time.Millisecond), strings.Count(string(dump), "received snapshot"),
		worst.Round(time.Millisecond), du(t, n.DataPath))
	if err := cl.RemoveNode(victim); err != nil {
		t.Fatal(err)
	}

}

// du reports the data directory's size and its split between the WAL, the snapshots and the
// state machine, so an operator can see what a replaced node's disk must hold.
func du(t *testing.T, dir string) string {
	sizes := map[string]int64{}
	var total int64
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
			if rel, err := filepath.Rel(dir, path); err == nil {
				sizes[strings.SplitN(rel, string(filepath.Separator), 2)[0]] += info.Size()
			}
		}
		return nil
	})
	parts := make([]string, 0, len(sizes))
	for name, size := range sizes {
		if size >= 1<<20 {
			parts = append(parts, fmt.Sprintf("%s %d MiB", name, size>>20))
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d MiB (%s)", total>>20, strings.Join(parts, ", "))
}
