//go:build unix

package clusterkit

import (
	"os"
	"path/filepath"
	"syscall"
)

// claimed holds the lock files of the ports this process handed out, open until it exits.
var claimed []*os.File

// claimPort reserves port among every process on the machine that picks ports with
// FreeAddrs: test packages run side by side, and a port one of them checked and released
// must not be taken by another before its node binds it. The claim is a lock on a file per
// port that the kernel drops when the process exits, so a crashed test leaves nothing held.
func claimPort(port string) bool {
	dir := filepath.Join(os.TempDir(), "georaft-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true // no shared directory: fall back to this process's own bookkeeping
	}
	f, err := os.OpenFile(filepath.Join(dir, port), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	claimed = append(claimed, f)
	return true
}
