package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/georaft/georaft/node/wal"
	"github.com/georaft/georaft/raft"
)

// A WAL whose last segment is damaged with valid records after the damage: start-up refuses
// it and names `georaftd wal drop-damaged-tail`, which says what it would drop, drops it
// only with --yes, and leaves a log that opens with the entries before the damage.
func TestWALDropDamagedTail(t *testing.T) {
	dataDir := t.TempDir()
	walDir := filepath.Join(dataDir, "wal")
	w, _, err := wal.Open(wal.Options{Dir: walDir})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 10; i++ {
		if err := w.Save(&raft.HardState{Term: 1, Commit: i - 1}, []raft.Entry{{Index: i, Term: 1, Data: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rec, err := wal.Inspect(walDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	seg := rec.Segments[len(rec.Segments)-1].File
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Damage a byte in the middle of the segment: records after it still decode.
	at := len(data) / 2
	data[at] ^= 0xff
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = wal.Open(wal.Options{Dir: walDir})
	if err == nil || !strings.Contains(err.Error(), "georaftd wal drop-damaged-tail "+walDir+" --yes") {
		t.Fatalf("start-up error %v does not name the way out", err)
	}

	out, err := exec.Command(georaftd, "wal", "drop-damaged-tail", dataDir).CombinedOutput()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 2 || !strings.Contains(string(out), "would drop") {
		t.Fatalf("without --yes: %v\n%s\nwant exit 2 saying what would be dropped", err, out)
	}
	if after, _ := os.ReadFile(seg); len(after) != len(data) {
		t.Fatal("without --yes the segment changed")
	}
	out, err = exec.Command(georaftd, "wal", "drop-damaged-tail", dataDir, "--yes").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dropped") {
		t.Fatalf("with --yes: %v\n%s", err, out)
	}
	w, rec, err = wal.Open(wal.Options{Dir: walDir})
	if err != nil {
		t.Fatalf("the log does not open after the drop: %v", err)
	}
	defer w.Close()
	if last := rec.LastIndex(); last == 0 || last >= 10 {
		t.Fatalf("after the drop the log ends at %d, want the entries before the damage", last)
	}
	out, err = exec.Command(georaftd, "wal", "drop-damaged-tail", dataDir).CombinedOutput()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.Contains(string(out), "no damaged tail") {
		t.Fatalf("on a sound log: %v\n%s\nwant exit 1 saying there is nothing to drop", err, out)
	}
}
