package wal

import (
	"os"
	"sync"
	"syscall"
	"time"
)

// FaultFS wraps an FS to count fsyncs and to inject the failures a disk produces: fsync
// errors and running out of space part way through a write. It is safe for concurrent
// use; tests of this package and of the node use it.
type FaultFS struct {
	Inner FS

	mu          sync.Mutex
	syncs       int64
	syncTime    time.Duration
	syncsLeft   int64 // syncs that still succeed before failing; -1 means no limit
	syncErr     error
	writeBudget int64 // bytes that can still be written before ENOSPC; -1 means no limit
	beforeSync  func(name string)
}

// NewFaultFS wraps inner (OSFS if nil) with no faults armed.
func NewFaultFS(inner FS) *FaultFS {
	if inner == nil {
		inner = OSFS{}
	}
	return &FaultFS{Inner: inner, syncsLeft: -1, writeBudget: -1}
}

// FailSyncAfter lets the next n syncs succeed and makes every later one fail with err
// (EIO if nil) without syncing.
func (f *FaultFS) FailSyncAfter(n int64, err error) {
	if err == nil {
		err = syscall.EIO
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncsLeft, f.syncErr = n, err
}

// FailWritesAfter lets n more bytes be written; the write that crosses the limit writes
// what fits and fails with ENOSPC, as a full disk does.
func (f *FaultFS) FailWritesAfter(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeBudget = n
}

// Heal disarms every fault.
func (f *FaultFS) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncsLeft, f.writeBudget = -1, -1
}

// SetBeforeSync installs a hook run at the start of every sync (outside FaultFS's lock),
// so a test can hold a flush in place while it arranges what happens meanwhile.
func (f *FaultFS) SetBeforeSync(hook func(name string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforeSync = hook
}

// Syncs is how many syncs (files and directories) were attempted.
func (f *FaultFS) Syncs() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// SyncTime is the total time spent in successful and failed syncs.
func (f *FaultFS) SyncTime() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncTime
}

func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	file, err := f.Inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *FaultFS) ReadDir(name string) ([]os.DirEntry, error) { return f.Inner.ReadDir(name) }
func (f *FaultFS) Remove(name string) error                   { return f.Inner.Remove(name) }
func (f *FaultFS) Rename(oldpath, newpath string) error       { return f.Inner.Rename(oldpath, newpath) }
func (f *FaultFS) MkdirAll(path string, perm os.FileMode) error {
	return f.Inner.MkdirAll(path, perm)
}
func (f *FaultFS) Stat(name string) (os.FileInfo, error) { return f.Inner.Stat(name) }

type faultFile struct {
	File
	fs *FaultFS
}

func (ff *faultFile) Write(p []byte) (int, error) {
	f := ff.fs
	f.mu.Lock()
	allowed := len(p)
	full := false
	if f.writeBudget >= 0 && int64(len(p)) > f.writeBudget {
		allowed, full = int(f.writeBudget), true
	}
	if f.writeBudget >= 0 {
		f.writeBudget -= int64(allowed)
	}
	f.mu.Unlock()

	n, err := ff.File.Write(p[:allowed])
	if err == nil && full {
		err = &os.PathError{Op: "write", Path: ff.Name(), Err: syscall.ENOSPC}
	}
	return n, err
}

func (ff *faultFile) Sync() error {
	f := ff.fs
	f.mu.Lock()
	hook := f.beforeSync
	f.mu.Unlock()
	if hook != nil {
		hook(ff.Name())
	}

	f.mu.Lock()
	f.syncs++
	var injected error
	switch {
	case f.syncsLeft == 0:
		injected = f.syncErr
	case f.syncsLeft > 0:
		f.syncsLeft--
	}
	f.mu.Unlock()
	if injected != nil {
		return &os.PathError{Op: "fsync", Path: ff.Name(), Err: injected}
	}

	start := time.Now()
	err := ff.File.Sync()
	elapsed := time.Since(start)
	f.mu.Lock()
	f.syncTime += elapsed
	f.mu.Unlock()
	return err
}
