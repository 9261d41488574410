package node_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/node"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// walSegments lists a node's WAL segment files, oldest first.
func walSegments(t *testing.T, dataDir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "wal", "*.wal"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no WAL segments in %s: %v", dataDir, err)
	}
	sort.Strings(files)
	return files
}

// writeAndStop fills a 3-node cluster with n writes, then stops every node.
func writeAndStop(t *testing.T, n int) *testCluster {
	t.Helper()
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	for i := 0; i < n; i++ {
		if _, err := c.set(leader, fmt.Sprintf("key-%d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.servers {
		c.kill(i)
	}
	return c
}

// Corruption in the middle of the log refuses start-up, naming the file and the offset.
func TestCorruptWALRefusesStartup(t *testing.T) {
	c := writeAndStop(t, 60)
	segs := walSegments(t, c.cfgs[0].Node.DataDir)
	seg := segs[len(segs)-1]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	at := len(data) / 3
	data[at] ^= 0xff
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = node.Start(c.cfgs[0], testLogger())
	if err == nil {
		t.Fatal("a node with a corrupt record in the middle of its WAL started")
	}
	msg := err.Error()
	if !strings.Contains(msg, filepath.Base(seg)) || !strings.Contains(msg, "offset") {
		t.Fatalf("the refusal does not name the file and offset: %v", err)
	}
	// The file was not modified: committed data is never silently dropped.
	after, _ := os.ReadFile(seg)
	if !bytes.Equal(after, data) {
		t.Fatal("the refused start-up modified the corrupt segment")
	}
}

// A torn last record (a write cut short by a crash) is truncated, logged, and the node runs.
func TestTornTailIsRecovered(t *testing.T) {
	c := writeAndStop(t, 20)
	segs := walSegments(t, c.cfgs[0].Node.DataDir)
	seg := segs[len(segs)-1]
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The start of a record header whose body never made it to disk.
	if _, err := f.Write([]byte{0x40, 0x00, 0x00, 0x00, 0xde, 0xad}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for i := range c.servers {
		c.start(i)
	}
	leader := c.waitLeader(10 * time.Second)
	for i := 0; i < 20; i++ {
		got, err := c.get(leader, fmt.Sprintf("key-%d", i), georaftv1.ReadMode_READ_MODE_INDEX)
		if err != nil || !got.Found {
			t.Fatalf("key-%d after torn-tail recovery: %+v err=%v", i, got, err)
		}
	}
	c.kill(0) // flushes dump.txt
	dump, err := os.ReadFile(filepath.Join(c.cfgs[0].Node.DataDir, node.DumpFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dump, []byte("torn WAL tail")) {
		t.Fatalf("dump.txt does not record the torn tail:\n%s", tail(dump, 2000))
	}
}
