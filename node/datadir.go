package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/georaft/georaft/node/config"
)

// A data directory belongs to one member of one cluster, and to one process at a time.
//
// LOCK holds an exclusive flock(2) for as long as georaftd runs, and the holder's pid: a
// second georaftd on the same directory refuses to start and names the first. The kernel
// drops the lock when the process dies, even by kill -9, so a crash never leaves it behind.
//
// member.json records who the directory is: the cluster id, the member id, and the voters the
// cluster was created with (every member's log starts from them, so they must not depend on
// what a configuration file says later). It is written once, when the directory is first
// used; from then on the node checks its configuration against it, and learns the membership
// from its log, never from the peers list of its file.

const (
	lockFileName     = "LOCK"
	identityFileName = "member.json"
)

// dataDirLock is the held lock of a data directory.
type dataDirLock struct{ f *os.File }

// lockDataDir takes dir's lock, or says which process holds it.
func lockDataDir(dir string) (*dataDirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := describeLockHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by %s: two georaftd must never share a data directory "+
				"(stop that one first, or give this one another node.data_dir)", dir, holder)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "%d\n", os.Getpid())
		f.Sync()
	}
	return &dataDirLock{f: f}, nil
}

// describeLockHolder names the process whose pid the lock file holds.
func describeLockHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return "another process"
	}
	desc := fmt.Sprintf("process %d", pid)
	if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(cmd) > 0 {
		desc += fmt.Sprintf(" (%s)", strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	return desc
}

func (l *dataDirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// identity is member.json.
type identity struct {
	ClusterID string `json:"cluster_id"`
	MemberID  uint64 `json:"member_id"`
	// InitialVoters are the voters the cluster was created with (raft.Config.Peers).
	InitialVoters []uint64 `json:"initial_voters"`
	// Origin is how this directory became a member: "bootstrap" (one of the voters the
	// cluster was created with) or "join" (added at run time).
	Origin  string    `json:"origin"`
	Created time.Time `json:"created"`
	// JoinedThrough is the address a joined member was added through, and JoinMembers the
	// members that answer named: where it dials them until its log says more.
	JoinedThrough string        `json:"joined_through,omitempty"`
	JoinMembers   []config.Peer `json:"join_members,omitempty"`
	// Removed is set once this member applied its own removal: it may never start again.
	Removed bool `json:"removed,omitempty"`
}

const (
	originBootstrap = "bootstrap"
	originJoin      = "join"
)

// readIdentity reads dir's member.json; ok is false when there is none.
func readIdentity(dir string) (id identity, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, identityFileName))
	if errors.Is(err, os.ErrNotExist) {
		return identity{}, false, nil
	}
	if err != nil {
		return identity{}, false, err
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return identity{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, identityFileName), err)
	}
	if id.MemberID == 0 || id.ClusterID == "" || len(id.InitialVoters) == 0 {
		return identity{}, false, fmt.Errorf("%s: incomplete (cluster %q, member %d, initial voters %v)",
			filepath.Join(dir, identityFileName), id.ClusterID, id.MemberID, id.InitialVoters)
	}
	return id, true, nil
}

// writeIdentity replaces dir's member.json atomically.
func writeIdentity(dir string, id identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, identityFileName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		if d, derr := os.Open(dir); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// hasConsensusState reports whether dir holds a WAL or a snapshot: a member's data.
func hasConsensusState(dir string) bool {
	for _, sub := range []string{"wal", "snap"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err == nil && len(entries) > 0 {
			return true
		}
	}
	return false
}

// checkIdentity compares member.json with what the configuration says this node is.
func (id identity) check(dir, clusterID string, memberID uint64) error {
	if id.Removed {
		return fmt.Errorf("data directory %s belongs to member %d, which was removed from cluster %q: it never starts again. "+
			"Empty the directory and start with --join to add this machine as a new member", dir, id.MemberID, id.ClusterID)
	}
	if id.ClusterID != clusterID {
		return fmt.Errorf("data directory %s belongs to cluster %q, but cluster_id is %q", dir, id.ClusterID, clusterID)
	}
	if memberID != 0 && id.MemberID != memberID {
		return fmt.Errorf("data directory %s belongs to member %d, but node.id is %d", dir, id.MemberID, memberID)
	}
	if slices.Contains(id.InitialVoters, 0) {
		return fmt.Errorf("data directory %s: initial voters %v name node 0", dir, id.InitialVoters)
	}
	return nil
}
