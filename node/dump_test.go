package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/georaft/georaft/raft"
)

// Sampled client traffic keeps one line in DumpSampleEvery; the story is always kept.
func TestDumpSamplesTraffic(t *testing.T) {
	dir := t.TempDir()
	d, err := openDumpLog(dir, 0, DumpRequestsSampled)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 250 {
		d.Request("client request received: %d", i)
	}
	d.Events([]raft.Event{{Kind: raft.EventBecameLeader, Term: 3}, {Kind: raft.EventCommitted, Index: 9}})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, DumpFileName))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if n := strings.Count(text, "client request received"); n != 3 {
		t.Errorf("%d of 250 requests recorded, want 3 (1 in %d):\n%s", n, DumpSampleEvery, text)
	}
	if !strings.Contains(text, (raft.Event{Kind: raft.EventBecameLeader, Term: 3}).String()) {
		t.Errorf("the election was not recorded:\n%s", text)
	}
	if _, err := ParseRequestDump("some"); err == nil {
		t.Error("an unknown log.dump_requests was accepted")
	}
}
