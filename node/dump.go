package node

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/georaft/georaft/raft"
)

// DumpFileName is the human-readable event log in every data directory, kept in the spirit of
// the prototype's dump.txt that operators liked to read.
const DumpFileName = "dump.txt"

// RequestDump says how much client traffic dump.txt records: the requests received, the
// commits and accepted appends they cause, the entries applied. The story of elections,
// votes, leases, transfers, snapshots, faults, start and stop is always recorded; the
// traffic would bury it (one line per request), so by default it is left out.
type RequestDump uint8

const (
	// DumpRequestsOff records no client traffic.
	DumpRequestsOff RequestDump = iota
	// DumpRequestsSampled records one traffic line in DumpSampleEvery.
	DumpRequestsSampled
	// DumpRequestsAll records every one.
	DumpRequestsAll
)

// DumpSampleEvery is the sampling of DumpRequestsSampled.
const DumpSampleEvery = 100

// ParseRequestDump reads log.dump_requests: off, sampled or all.
func ParseRequestDump(s string) (RequestDump, error) {
	switch s {
	case "off":
		return DumpRequestsOff, nil
	case "sampled":
		return DumpRequestsSampled, nil
	case "all":
		return DumpRequestsAll, nil
	}
	return 0, fmt.Errorf("dump requests %q: want off, sampled or all", s)
}

// dumpLog appends timestamped lines to dump.txt. It buffers, since with every request
// recorded it writes a line per request, and rotates to dump.txt.1 so it cannot fill the
// disk.
type dumpLog struct {
	requests RequestDump
	traffic  atomic.Uint64 // traffic lines offered, for sampling
	mu       sync.Mutex
	dirty    bool
	stop     chan struct{}
	path     string
	file     *os.File
	w        *bufio.Writer
	size     int64
	maxBytes int64
	wall     func() time.Time
	stamp    []byte
	// recent keeps the story (not the traffic) in memory for Status and the console.
	recent *eventRing
}

const defaultDumpMaxBytes = 64 << 20

func openDumpLog(dataDir string, maxBytes int64, requests RequestDump) (*dumpLog, error) {
	if maxBytes <= 0 {
		maxBytes = defaultDumpMaxBytes
	}
	d := &dumpLog{path: filepath.Join(dataDir, DumpFileName), maxBytes: maxBytes, wall: time.Now, requests: requests,
		recent: newEventRing(time.Now())}
	if err := d.open(); err != nil {
		return nil, err
	}
	d.stop = make(chan struct{})
	go d.flushEvery(dumpFlushInterval)
	return d, nil
}

// dumpFlushInterval bounds how stale dump.txt is for someone reading it while the node runs.
const dumpFlushInterval = 200 * time.Millisecond

func (d *dumpLog) flushEvery(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			d.Flush()
		case <-d.stop:
			return
		}
	}
}

func (d *dumpLog) open() error {
	f, err := os.OpenFile(d.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open event log %s: %w", d.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat event log %s: %w", d.path, err)
	}
	d.file, d.size = f, st.Size()
	d.w = bufio.NewWriterSize(f, 64<<10)
	return nil
}

// Printf records one line of the story, in the file and in memory.
func (d *dumpLog) Printf(format string, args ...any) {
	if d == nil {
		return
	}
	d.recent.add(d.wall(), lineCategory(format), fmt.Sprintf(format, args...))
	d.printf(format, args...)
}

// printf writes one line to the file.
func (d *dumpLog) printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w == nil {
		return
	}
	// Formatted straight into the buffer: this runs for every client request.
	d.stamp = d.wall().UTC().AppendFormat(d.stamp[:0], "2006-01-02T15:04:05.000Z ")
	n, _ := d.w.Write(d.stamp)
	m, _ := fmt.Fprintf(d.w, format, args...)
	d.w.WriteByte('\n')
	d.size += int64(n + m + 1)
	d.dirty = true
	if d.size >= d.maxBytes {
		d.rotateLocked()
	}
}

// Request records a line of client traffic, as log.dump_requests says.
func (d *dumpLog) Request(format string, args ...any) {
	if d.keepTraffic() {
		d.printf(format, args...)
	}
}

func (d *dumpLog) keepTraffic() bool {
	if d == nil {
		return false
	}
	switch d.requests {
	case DumpRequestsAll:
		return true
	case DumpRequestsSampled:
		return d.traffic.Add(1)%DumpSampleEvery == 1
	}
	return false
}

// Events records what the core reported. Commits and accepted appends are client traffic.
func (d *dumpLog) Events(events []raft.Event) {
	if d == nil {
		return
	}
	for _, e := range events {
		if e.Kind == raft.EventCommitted || e.Kind == raft.EventAppendAccepted {
			if d.keepTraffic() {
				d.printf("%s", e)
			}
			continue
		}
		text := e.String()
		d.recent.add(d.wall(), eventCategory(e.Kind), text)
		d.printf("%s", text)
	}
}

func (d *dumpLog) rotateLocked() {
	d.w.Flush()
	d.file.Close()
	// Losing the older half of a debugging aid is acceptable; failing the node is not, so
	// rotation errors only stop the log.
	_ = os.Rename(d.path, d.path+".1")
	if err := d.open(); err != nil {
		d.w, d.file = nil, nil
	}
}

// Flush writes buffered lines to the file.
func (d *dumpLog) Flush() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w != nil && d.dirty {
		d.w.Flush()
		d.dirty = false
	}
}

// Close flushes and closes the file.
func (d *dumpLog) Close() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w == nil {
		return nil
	}
	close(d.stop)
	err := d.w.Flush()
	if cerr := d.file.Close(); err == nil {
		err = cerr
	}
	d.w, d.file = nil, nil
	return err
}
