package wal

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/georaft/georaft/raft"
)

// The benchmarks run on the real disk in a temporary directory (set TMPDIR to measure
// another disk). appends/s and entries/s are what they measure; fsync-µs is the mean time
// one fsync took.

const benchEntryBytes = 128

func benchWAL(b *testing.B) (*WAL, *FaultFS) {
	b.Helper()
	fsys := NewFaultFS(nil) // no faults armed: it only counts and times fsyncs
	w, _, err := Open(Options{Dir: b.TempDir(), FS: fsys, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	return w, fsys
}

func reportFsyncs(b *testing.B, fsys *FaultFS, syncsBefore int64, timeBefore time.Duration, entries int) {
	syncs := fsys.Syncs() - syncsBefore
	if syncs > 0 {
		b.ReportMetric(float64((fsys.SyncTime()-timeBefore).Microseconds())/float64(syncs), "fsync-µs")
	}
	b.ReportMetric(float64(syncs)/float64(entries), "fsyncs/entry")
}

// BenchmarkSaveSingle is one entry per Save, each fsynced on its own.
func BenchmarkSaveSingle(b *testing.B) {
	w, fsys := benchWAL(b)
	data := []byte(strings.Repeat("v", benchEntryBytes))
	syncs, syncTime := fsys.Syncs(), fsys.SyncTime()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := w.Save(nil, []raft.Entry{{Index: uint64(i + 1), Term: 1, Data: data}}); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	reportFsyncs(b, fsys, syncs, syncTime, b.N)
}

// BenchmarkSaveGroupCommit has many concurrent savers, each saving one entry at a time;
// their fsyncs coalesce.
func BenchmarkSaveGroupCommit(b *testing.B) {
	for _, savers := range []int{8, 64} {
		b.Run(fmt.Sprintf("savers=%d", savers), func(b *testing.B) {
			w, fsys := benchWAL(b)
			data := []byte(strings.Repeat("v", benchEntryBytes))
			var (
				allocMu sync.Mutex
				next    uint64 = 1
				left           = b.N
				wg      sync.WaitGroup
			)
			syncs, syncTime := fsys.Syncs(), fsys.SyncTime()
			b.ResetTimer()
			start := time.Now()
			for range savers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						allocMu.Lock()
						if left == 0 {
							allocMu.Unlock()
							return
						}
						left--
						i := next
						next++
						p, err := w.Submit(nil, []raft.Entry{{Index: i, Term: 1, Data: data}})
						allocMu.Unlock()
						if err == nil {
							err = p.Wait()
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
			reportFsyncs(b, fsys, syncs, syncTime, b.N)
		})
	}
}
