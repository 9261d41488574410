package wal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/georaft/georaft/raft"
)

func TestFsyncFailurePoisons(t *testing.T) {
	dir := t.TempDir()
	fsys := NewFaultFS(nil)
	w, _ := openWAL(t, Options{Dir: dir, FS: fsys})
	mustSave(t, w, &raft.HardState{Term: 1}, makeEntries(1, 3, 1))

	fsys.FailSyncAfter(0, syscall.EIO)
	first := w.Save(nil, makeEntries(4, 4, 1))
	if first == nil || !errors.Is(first, syscall.EIO) || !strings.Contains(first.Error(), "wal: syncing ") {
		t.Fatalf("Save with failing fsync: %v, want a wal fsync error wrapping EIO", first)
	}
	// Retrying cannot be trusted even once the disk answers again.
	fsys.Heal()
	calls := map[string]func() error{
		"Save":         func() error { return w.Save(nil, makeEntries(5, 5, 1)) },
		"Save retry":   func() error { return w.Save(nil, makeEntries(4, 4, 1)) },
		"HardState":    func() error { return w.Save(&raft.HardState{Term: 2}, nil) },
		"SaveSnapshot": func() error { return w.SaveSnapshot(raft.SnapshotMeta{Index: 2, Term: 1}) },
		"Compact":      func() error { return w.Compact(0) },
		"Submit": func() error {
			_, err := w.Submit(nil, makeEntries(4, 4, 1))
			return err
		},
	}
	for name, call := range calls {
		if err := call(); err != first {
			t.Errorf("%s after the fsync failure: %v, want the first error %v", name, err, first)
		}
	}
	if err := w.Close(); err != first {
		t.Errorf("Close: %v, want the first error", err)
	}
	// Everything acknowledged before the failure is still there.
	rec, err := Inspect(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Entries); n < 3 {
		t.Fatalf("recovered %d entries, want the 3 acknowledged", n)
	}
	assertEntries(t, rec.Entries[:3], makeEntries(1, 3, 1))
}

func TestInjectedDiskFull(t *testing.T) {
	dir := t.TempDir()
	fsys := NewFaultFS(nil)
	w, _ := openWAL(t, Options{Dir: dir, FS: fsys})
	mustSave(t, w, &raft.HardState{Term: 1}, makeEntries(1, 5, 1))

	// Room for about one and a half records of the next batch.
	fsys.FailWritesAfter(40)
	err := w.Save(&raft.HardState{Term: 1, Commit: 8}, makeEntries(6, 8, 1))
	path := segmentFiles(t, dir)[0]
	want := "wal: disk full writing " + path + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Save on a full disk: %v, want %q... wrapping ENOSPC", err, want)
	}
	if again := w.Save(nil, makeEntries(6, 6, 1)); again != err {
		t.Fatalf("Save after disk full: %v, want the first error", again)
	}
	w.Close()

	// The partial record left behind is a torn tail on the next Open.
	fsys.Heal()
	w, rec := openWAL(t, Options{Dir: dir, FS: fsys})
	defer w.Close()
	if rec.TornTail == nil || rec.TornTail.File != path {
		t.Fatalf("torn tail %v, want one in %s", rec.TornTail, path)
	}
	if len(rec.Entries) < 5 {
		t.Fatalf("recovered %s, want at least the acknowledged 1..5", span(rec.Entries))
	}
	assertEntries(t, rec.Entries[:5], makeEntries(1, 5, 1))
	next := rec.LastIndex() + 1
	mustSave(t, w, nil, makeEntries(next, next, 2))
}

func TestInjectedDiskFullWhileRolling(t *testing.T) {
	dir := t.TempDir()
	fsys := NewFaultFS(nil)
	w, _ := openWAL(t, Options{Dir: dir, FS: fsys, SegmentBytes: 200})
	// Fill the segment until the next save must roll, then leave no room for the new
	// segment's header.
	next := uint64(1)
	for {
		e := makeEntries(next, next, 1)
		seg := w.Segments()[0]
		if seg.Records > 1 && seg.Bytes+int64(len(appendEntryRecord(nil, &e[0]))) > 200 {
			break
		}
		mustSave(t, w, nil, e)
		next++
	}
	fsys.FailWritesAfter(0)
	err := w.Save(nil, makeEntries(next, next, 1))
	if err == nil || !strings.Contains(err.Error(), "wal: disk full writing ") || !strings.Contains(err.Error(), tmpExt) {
		t.Fatalf("Save needing a new segment on a full disk: %v", err)
	}
	w.Close()
	fsys.Heal()
	w, rec := openWAL(t, Options{Dir: dir, FS: fsys, SegmentBytes: 200})
	defer w.Close()
	assertEntries(t, rec.Entries, makeEntries(1, next-1, 1))
	mustSave(t, w, nil, makeEntries(next, next, 1))
}

// TestDiskFullOnTmpfs fills a real 1 MiB filesystem.
func TestDiskFullOnTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a size-limited tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount tmpfs on %s (%v: %s)", mnt, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dir := mnt + "/wal"
	w, _ := openWAL(t, Options{Dir: dir})
	var acked []raft.Entry
	var saveErr error
	for i := uint64(1); i <= 1000; i++ {
		e := raft.Entry{Index: i, Term: 1, Data: []byte(strings.Repeat(fmt.Sprintf("%08d", i), 700))}
		if saveErr = w.Save(&raft.HardState{Term: 1, Commit: i - 1}, []raft.Entry{e}); saveErr != nil {
			break
		}
		acked = append(acked, e)
	}
	if saveErr == nil {
		t.Fatal("1000 entries of 5600 bytes fit in a 1 MiB tmpfs")
	}
	if !strings.HasPrefix(saveErr.Error(), "wal: disk full writing "+dir) || !errors.Is(saveErr, syscall.ENOSPC) {
		t.Fatalf("error on a full tmpfs: %v", saveErr)
	}
	if len(acked) < 100 {
		t.Fatalf("only %d entries fit before ENOSPC", len(acked))
	}
	if err := w.Save(nil, nil); err != nil && err != saveErr {
		t.Fatalf("after ENOSPC: %v", err)
	}
	if err := w.Save(nil, makeEntries(uint64(len(acked)+1), uint64(len(acked)+1), 1)); err != saveErr {
		t.Fatalf("Save after ENOSPC: %v, want the first error", err)
	}
	w.Close()

	// Recovery works on the still-full filesystem: truncating frees space.
	w, rec := openWAL(t, Options{Dir: dir})
	defer w.Close()
	if len(rec.Entries) < len(acked) {
		t.Fatalf("recovered %d entries, %d were acknowledged", len(rec.Entries), len(acked))
	}
	assertEntries(t, rec.Entries[:len(acked)], acked)
	if rec.HardState.Commit < uint64(len(acked)-1) {
		t.Fatalf("hard state %+v behind the acknowledged commit %d", rec.HardState, len(acked)-1)
	}
}

// TestGroupCommitCoalesces holds the first flush inside its fsync until every other
// saver has queued, so the fsync count is deterministic: one for the first save, one for
// everything queued behind it.
func TestGroupCommitCoalesces(t *testing.T) {
	dir := t.TempDir()
	fsys := NewFaultFS(nil)
	w, _ := openWAL(t, Options{Dir: dir, FS: fsys})
	defer w.Close()

	const savers = 16
	var (
		allocMu   sync.Mutex
		nextIndex uint64 = 1
		gateOnce  sync.Once
		queued    = make(chan struct{}, savers)
	)
	release := make(chan struct{})
	fsys.SetBeforeSync(func(string) {
		gateOnce.Do(func() {
			close(queued) // signal: the first flush is in its fsync
			<-release
		})
	})
	// saveOne allocates an index and submits under allocMu, so log order is index order.
	saveOne := func() error {
		allocMu.Lock()
		i := nextIndex
		nextIndex++
		p, err := w.Submit(&raft.HardState{Term: 1, Commit: i}, makeEntries(i, i, 1))
		allocMu.Unlock()
		if err != nil {
			return err
		}
		return p.Wait()
	}

	syncsBefore := fsys.Syncs()
	errs := make(chan error, savers)
	go func() { errs <- saveOne() }()
	<-queued // the first flush holds the writer
	for range savers - 1 {
		go func() { errs <- saveOne() }()
	}
	waitFor(t, "every saver queued behind the first flush", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.queue) == savers-1
	})
	close(release)
	for range savers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	syncs := fsys.Syncs() - syncsBefore
	if syncs >= savers {
		t.Fatalf("%d fsyncs for %d saves: no coalescing", syncs, savers)
	}
	if syncs != 2 {
		t.Fatalf("%d fsyncs, want 2 (the held flush, then one for the %d queued saves)", syncs, savers-1)
	}
	w.Close()
	rec, err := Inspect(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertEntries(t, rec.Entries, makeEntries(1, savers, 1))
	if rec.HardState.Commit != savers {
		t.Fatalf("hard state %+v, want the last submitted commit %d", rec.HardState, savers)
	}
}

// TestConcurrentSaversUnderLoad runs many savers freely (run it with -race) and checks the
// log is exactly what they acknowledged, with fewer fsyncs than saves.
func TestConcurrentSaversUnderLoad(t *testing.T) {
	dir := t.TempDir()
	fsys := NewFaultFS(nil)
	w, _ := openWAL(t, Options{Dir: dir, FS: fsys, SegmentBytes: 16 << 10})
	const savers, perSaver = 8, 60
	var allocMu sync.Mutex
	next := uint64(1)
	// Slow every fsync a little so savers pile up behind it, as they do on a real disk, and
	// count the fsyncs of segments (rolling also syncs temporary files and the directory).
	var segmentSyncs atomic.Int64
	fsys.SetBeforeSync(func(name string) {
		if strings.HasSuffix(name, segmentExt) {
			segmentSyncs.Add(1)
		}
		time.Sleep(200 * time.Microsecond)
	})
	var wg sync.WaitGroup
	errs := make(chan error, savers)
	for range savers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perSaver {
				allocMu.Lock()
				i := next
				next++
				p, err := w.Submit(nil, makeEntries(i, i, 1))
				allocMu.Unlock()
				if err == nil {
					err = p.Wait()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	syncs := segmentSyncs.Load()
	mustClose(t, w)
	if syncs >= savers*perSaver {
		t.Fatalf("%d fsyncs for %d saves", syncs, savers*perSaver)
	}
	w, rec := openWAL(t, Options{Dir: dir, SegmentBytes: 16 << 10})
	defer w.Close()
	assertEntries(t, rec.Entries, makeEntries(1, savers*perSaver, 1))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
