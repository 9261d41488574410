package raft

import (
	"strings"
	"testing"
	"time"
)

// Every impossible setting is reported, naming its values, and a valid one passes.
func TestConfigValidate(t *testing.T) {
	ok := testConfig(1, []uint64{1, 2, 3})
	cases := []struct {
		name  string
		tweak func(*Config)
		want  []string // substrings of the error; none means valid
	}{
		{"valid", func(*Config) {}, nil},
		{"zero id", func(c *Config) { c.ID = 0 }, []string{"node id must not be 0"}},
		{"duplicate peer", func(c *Config) { c.Peers = []uint64{1, 2, 2} }, []string{"peer id 2 is listed twice"}},
		{"zero peer", func(c *Config) { c.Peers = []uint64{1, 0} }, []string{"peer id must not be 0"}},
		{"heartbeat", func(c *Config) { c.HeartbeatInterval = 0 }, []string{"heartbeat interval must be positive, got 0s"}},
		{"election order", func(c *Config) { c.ElectionTimeoutMax = 50 * time.Millisecond },
			[]string{"election timeout max (50ms) must not be below the min (100ms)"}},
		{"lease vs election", func(c *Config) { c.LeaseDuration = 100 * time.Millisecond },
			[]string{"lease duration (100ms) must be shorter than the minimum election timeout (100ms)"}},
		{"heartbeats per lease", func(c *Config) { c.HeartbeatInterval = 20 * time.Millisecond },
			[]string{"heartbeat interval (20ms) must be at most a third of the lease duration (50ms)"}},
		{"drift", func(c *Config) { c.MaxClockDrift = 0.7 }, []string{"max clock drift must be in [0, 0.5), got 0.7"}},
		{"negative staleness", func(c *Config) { c.MaxStaleness = -time.Second }, []string{"max staleness must not be negative"}},
		{"several at once", func(c *Config) { c.ID = 0; c.LeaseDuration = 0 },
			[]string{"node id must not be 0", "lease duration must be positive"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			cfg.Peers = append([]uint64(nil), ok.Peers...)
			tc.tweak(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			if _, err := New(cfg, Restored{}, 0); err == nil {
				t.Errorf("New accepted the invalid config")
			}
		})
	}
}

// New refuses a restored state that cannot have come from a correct disk, and says why.
func TestNewRejectsInconsistentRestoredState(t *testing.T) {
	cfg := testConfig(1, []uint64{1, 2, 3})
	ents := func(terms ...uint64) []Entry {
		var out []Entry
		for i, tm := range terms {
			out = append(out, Entry{Index: uint64(i + 1), Term: tm})
		}
		return out
	}
	cases := []struct {
		name string
		s    Restored
		want string
	}{
		{"gap after snapshot", Restored{Snapshot: SnapshotMeta{Index: 5, Term: 1}, Entries: ents(1), Applied: 5},
			"restored entry 0 has index 1, want 6"},
		{"terms go down", Restored{HardState: HardState{Term: 3}, Entries: ents(2, 1)},
			"restored entry 2 has term 1, below the term 2"},
		{"hard state behind log", Restored{HardState: HardState{Term: 1}, Entries: ents(1, 2)},
			"hard state term 1 is below the last entry's term 2"},
		{"term past the ceiling", Restored{HardState: HardState{Term: MaxTerm + 1}},
			"hard state term 9223372036854775808 is past the largest term"},
		{"index past the ceiling", Restored{HardState: HardState{Term: 1}, Snapshot: SnapshotMeta{Index: MaxIndex, Term: 1},
			Entries: []Entry{{Index: MaxIndex + 1, Term: 1}}, Applied: MaxIndex},
			"passes the largest index"},
		{"applied beyond log", Restored{HardState: HardState{Term: 1}, Entries: ents(1), Applied: 4},
			"applied index 4 is beyond the last log index 1"},
		{"applied below snapshot", Restored{HardState: HardState{Term: 1}, Snapshot: SnapshotMeta{Index: 3, Term: 1}, Applied: 2},
			"applied index 2 is below the snapshot index 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(cfg, tc.s, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// A restored commit index beyond the restored log is clamped to its end, and every committed
// entry not yet applied is handed out again.
func TestRestoredCommitClampedAndReapplied(t *testing.T) {
	cfg := testConfig(1, []uint64{1, 2, 3})
	r, err := New(cfg, Restored{
		HardState: HardState{Term: 2, Vote: 1, Commit: 9},
		Snapshot:  SnapshotMeta{Index: 2, Term: 1},
		Entries:   []Entry{{Index: 3, Term: 1}, {Index: 4, Term: 2}},
		Applied:   2,
	}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st := r.Status()
	if st.Commit != 4 || st.LastIndex != 4 || st.FirstIndex != 3 || st.Applied != 2 {
		t.Fatalf("status %+v: want commit 4, last 4, first 3, applied 2", st)
	}
	rd := r.Ready()
	if len(rd.CommittedEntries) != 2 || rd.CommittedEntries[0].Index != 3 || len(rd.Entries) != 0 {
		t.Fatalf("first Ready: committed %v entries %v, want 3..4 to apply and nothing to persist",
			rd.CommittedEntries, rd.Entries)
	}
}
