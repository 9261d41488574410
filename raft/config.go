package raft

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is the static configuration of one core. All durations are on the node's own
// monotonic clock.
type Config struct {
	// ID is this node. Peers lists the voters the cluster was created with: the membership as
	// of index 0, which every node's log starts from. A node whose disk holds a later
	// membership (in its snapshot) goes by that and the changes in its log. A node joining an
	// existing cluster passes the same Peers, which do not include it: it votes only once a
	// change in the log makes it a voter. (A leader that compacted its log sends a joining node
	// a snapshot, which carries the membership as of its index.)
	ID    uint64
	Peers []uint64
	// ReadLeaseHolders are the members that hold read leases in the membership the cluster
	// was created with (see ConfState.ReadLeaseHolders); changed later through the log.
	ReadLeaseHolders []uint64
	// MaxLearnerLag is how far behind the leader's last index a learner may be and still be
	// promoted to voter (0 means 1000 entries): a voter that is far behind would count towards
	// quorums it cannot yet help.
	MaxLearnerLag uint64

	// HeartbeatInterval is how often an idle leader sends heartbeats; each acknowledged round
	// renews the lease.
	HeartbeatInterval time.Duration
	// ElectionTimeoutMin and ElectionTimeoutMax bound the randomized election timeout. The
	// leader's CheckQuorum uses ElectionTimeoutMin.
	ElectionTimeoutMin time.Duration
	ElectionTimeoutMax time.Duration
	// LeaseDuration is how long after a round was sent a quorum acknowledgement of it lets the
	// leader serve lease reads, before the drift margin is taken off.
	LeaseDuration time.Duration
	// MaxClockDrift bounds how much faster one node's clock may run than another's, as a
	// fraction: over any interval, elapsed(a) ≤ elapsed(b) / (1 − MaxClockDrift).
	MaxClockDrift float64
	// MaxStaleness is how long without contact from a quorum-backed leader a node still
	// answers stale reads. Zero means LeaseDuration.
	MaxStaleness time.Duration

	// Flow control per follower.
	MaxSizePerMsg    uint64 // bytes of entries in one MsgApp (at least one entry is sent)
	MaxInflightMsgs  int    // appends in flight to one follower
	MaxInflightBytes uint64 // bytes of entries in flight to one follower; 0 means no limit
	// MaxUncommittedBytes bounds the proposals a leader holds before refusing more with
	// ErrProposalDropped; 0 means no limit.
	MaxUncommittedBytes uint64
	// LazyCommitBroadcast stops the leader from sending an empty append only to tell an
	// idle follower a new commit index: the follower learns it from the next append or
	// heartbeat instead. Client latency does not depend on followers knowing the commit
	// index, and at low load that empty append and its answer are half the messages a
	// write costs. Followers then apply up to a heartbeat interval later.
	LazyCommitBroadcast bool

	// Seed feeds the election timeout randomization, so simulated runs replay exactly.
	Seed int64

	// BootID names the origin of the clock the node passes to Tick: it must change whenever
	// that clock may restart from another origin (a machine reboot for a boot-wide clock, a
	// process restart for a process-wide one). Followers stamp it on the clock readings they
	// send, and refuse echoes of readings from another boot (see FollowerBoot).
	BootID uint64

	// off turns safety mechanisms off, one by one. Only tests set it, to show that the
	// simulator catches each mechanism's absence (raft/knobs_test.go).
	off mechanisms
}

// mechanisms names every safety mechanism of the lease, commit and read rules that a test can
// turn off. A true field means the mechanism is OFF. Each is checked in exactly one place:
// the place where its rule lives. doc.go argues why each is needed, and docs/lease-knobs.md
// lists how many simulator seeds it takes to catch each one's absence.
type mechanisms struct {
	// Lease rule (doc.go, "The lease rule").
	followerRecord        bool // a follower records the leader's lease when it hears from it
	voteLeaseReport       bool // a vote reply reports the voter's lease record
	candidateOwnRecord    bool // a candidate's wait starts from its own lease record
	leaseScaleDown        bool // the leader's lease is scaled down by (1−δ)
	leaseFromSendTime     bool // the lease runs from when the acknowledged message was sent
	leaseQuorum           bool // the lease needs acknowledgements from a quorum
	leaseAfterTermCommit  bool // no lease read before an entry of the leader's term commits
	deferredCommit        bool // a new leader commits nothing before the old leases end
	startupAssumption     bool // a starting node assumes a lease runs from its start
	persistedLeaseBound   bool // that assumption uses the longest lease ever acknowledged
	transferRelinquish    bool // a leader gives its lease up before MsgTimeoutNow leaves
	transferInheritedWait bool // MsgTimeoutNow carries the leader's own remaining wait
	staleReplyNoEcho      bool // a reply to an older term's message echoes no SentAt or Round

	// Commit rule.
	figure8          bool // only an entry of the leader's term commits by counting
	voteLogCheck     bool // a vote goes only to a candidate whose log is up to date
	acksAfterPersist bool // votes and acknowledgements leave only after the persist
	// a candidate decides its election only once the Ready that made its term and vote
	// durable is carried out
	electAfterPersist bool
	// the leader counts itself only for entries a Ready has already handed out to persist
	leaderCountsHandedOut bool
	// an acknowledgement of entries dropped from the log before their persist is withdrawn
	withdrawTruncatedAcks bool

	// ReadIndex.
	readIndexFreshRound      bool // a read is confirmed only by a round sent after it arrived
	readIndexAfterTermCommit bool // no ReadIndex read before an entry of the term commits

	// Stale-read freshness (doc.go, "Stale-read freshness").
	freshnessFromEcho          bool // freshness is dated by the echoed follower clock, not receipt
	freshnessNeedsLeaderCommit bool // freshness only once committed up to the leader's commit, of its term
	freshnessNeedsLease        bool // freshness only from a leader that holds its lease
	freshnessSameBoot          bool // an echo from another boot of this node gives no freshness

	// Read leases (doc.go, "Read leases").
	readLeaseNesting     bool // a read lease granted ends before the leader's own lease
	commitWaitsForHolder bool // nothing commits that a holder with a lease has not acknowledged
	readLeaseFromEcho    bool // a read lease runs from the holder's echoed clock, not receipt
	readLeaseNeedsMatch  bool // a read lease goes only to a holder that holds every committed entry
	readLeasePending     bool // a holder's read waits for what it holds that may be committed
	transferHolderWait   bool // MsgTimeoutNow carries the longest read lease the leader granted

	// Membership changes (doc.go, "Membership changes").
	jointCommit         bool // a commit needs a majority of both halves of a joint membership
	jointElection       bool // an election needs a majority of both halves
	jointLease          bool // a lease needs acknowledgements from a majority of both halves
	removedStopsServing bool // a node that applied its own removal answers no lease read
	removedHolderWait   bool // commits wait out the read lease of a holder that was removed
	// learners count towards no quorum (commit, election, lease, ReadIndex, CheckQuorum)
	learnersOutsideQuorum bool
}

// applyDefaults fills zero flow-control fields with values that suit a WAN cluster.
func (c *Config) applyDefaults() {
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.MaxLearnerLag == 0 {
		c.MaxLearnerLag = 1000
	}
	if c.MaxStaleness == 0 {
		c.MaxStaleness = c.LeaseDuration
	}
}

// MaxAllowedClockDrift is the largest MaxClockDrift accepted. Beyond it the drift margin
// eats most of the lease and a broken clock is the likelier explanation.
const MaxAllowedClockDrift = 0.5

// ConfigError is one impossible setting of a Config. Field is the Config field to change
// ("LeaseDuration"); Fields lists every field the rule involves, Field first, so a caller
// with names of its own for them (config keys) can say which to change, and Describe puts
// those names in the sentence.
type ConfigError struct {
	Field  string
	Fields []string
	// parts is the sentence: plain text, and field references that Error names in the
	// core's words and Describe in the caller's.
	parts []any
}

// fieldRef is a field in a ConfigError's sentence, with the core's own words for it there.
type fieldRef struct{ field, words string }

func (e *ConfigError) Error() string {
	return e.Describe(nil)
}

// Describe is the error's sentence with every field named by name(field); nil uses the
// core's own words ("lease duration").
func (e *ConfigError) Describe(name func(field string) string) string {
	var b strings.Builder
	for _, p := range e.parts {
		switch p := p.(type) {
		case fieldRef:
			if name != nil {
				b.WriteString(name(p.field))
			} else {
				b.WriteString(p.words)
			}
		default:
			fmt.Fprint(&b, p)
		}
	}
	return b.String()
}

// field names field in a ConfigError's sentence, as words there.
func field(name, words string) fieldRef { return fieldRef{name, words} }

// configError builds a ConfigError from its sentence: strings and values as they are,
// fieldRefs as names.
func configError(parts ...any) *ConfigError {
	e := &ConfigError{parts: parts}
	for _, p := range parts {
		if f, ok := p.(fieldRef); ok {
			e.Fields = append(e.Fields, f.field)
		}
	}
	e.Field = e.Fields[0]
	return e
}

// Validate reports every impossible setting as a *ConfigError naming its fields and values,
// all of them joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(parts ...any) { errs = append(errs, configError(parts...)) }
	id := field("ID", "node id")
	heartbeat := field("HeartbeatInterval", "heartbeat interval")
	etMin, etMax := field("ElectionTimeoutMin", "election timeout min"), field("ElectionTimeoutMax", "election timeout max")
	lease := field("LeaseDuration", "lease duration")

	if c.ID == None {
		bad(id, " must not be 0")
	}
	seen := map[uint64]bool{}
	for _, p := range c.Peers {
		if p == None {
			bad(field("Peers", "peer id"), " must not be 0")
		}
		if seen[p] {
			bad(field("Peers", "peer id"), fmt.Sprintf(" %d is listed twice", p))
		}
		seen[p] = true
	}

	if c.HeartbeatInterval <= 0 {
		bad(heartbeat, fmt.Sprintf(" must be positive, got %v", c.HeartbeatInterval))
	}
	if c.ElectionTimeoutMin <= 0 {
		bad(etMin, fmt.Sprintf(" must be positive, got %v", c.ElectionTimeoutMin))
	}
	if c.ElectionTimeoutMax < c.ElectionTimeoutMin {
		bad(etMax, fmt.Sprintf(" (%v) must not be below ", c.ElectionTimeoutMax), field("ElectionTimeoutMin", "the min"),
			fmt.Sprintf(" (%v)", c.ElectionTimeoutMin))
	}
	if c.LeaseDuration <= 0 {
		bad(lease, fmt.Sprintf(" must be positive, got %v", c.LeaseDuration))
	}
	if c.MaxClockDrift < 0 || c.MaxClockDrift >= MaxAllowedClockDrift || c.MaxClockDrift != c.MaxClockDrift {
		bad(field("MaxClockDrift", "max clock drift"), fmt.Sprintf(" must be in [0, %v), got %v", MaxAllowedClockDrift, c.MaxClockDrift))
	}
	// A follower must not start an election while the leader may still serve lease reads on
	// the lease it granted; otherwise failover would routinely wait on a lease.
	if c.LeaseDuration > 0 && c.ElectionTimeoutMin > 0 && c.LeaseDuration >= c.ElectionTimeoutMin {
		bad(lease, fmt.Sprintf(" (%v) must be shorter than ", c.LeaseDuration),
			field("ElectionTimeoutMin", "the minimum election timeout"), fmt.Sprintf(" (%v)", c.ElectionTimeoutMin))
	}
	// At least three heartbeat rounds per lease, so one lost round does not drop the lease.
	if c.HeartbeatInterval > 0 && c.LeaseDuration > 0 && 3*c.HeartbeatInterval > c.LeaseDuration {
		bad(heartbeat, fmt.Sprintf(" (%v) must be at most a third of ", c.HeartbeatInterval),
			field("LeaseDuration", "the lease duration"), fmt.Sprintf(" (%v)", c.LeaseDuration))
	}
	if c.MaxStaleness < 0 {
		bad(field("MaxStaleness", "max staleness"), fmt.Sprintf(" must not be negative, got %v", c.MaxStaleness))
	}
	if c.MaxInflightMsgs < 0 {
		bad(field("MaxInflightMsgs", "max inflight messages"), fmt.Sprintf(" must not be negative, got %d", c.MaxInflightMsgs))
	}
	return errors.Join(errs...)
}

// scaleUpBound returns d / (1 − drift): how long, at most, d on another node's clock lasts on
// this one's.
func (c *Config) scaleUpBound(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.minDriftFactor())
}

// minDriftFactor is (1 − MaxClockDrift): the share of a lease a leader may count on.
func (c *Config) minDriftFactor() float64 { return 1 - c.MaxClockDrift }

// scaleDown returns d × (1 − drift), the part of a lease that is safe on this node's clock.
func (c *Config) scaleDown(d time.Duration) time.Duration {
	if c.off.leaseScaleDown {
		return d
	}
	return time.Duration(float64(d) * c.minDriftFactor())
}
