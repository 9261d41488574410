package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func roundTrip(t *testing.T, c *Config) *Config {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Print(&buf); err != nil {
		t.Fatalf("Print: %v", err)
	}
	again, err := LoadFile(writeFile(t, buf.String()))
	if err != nil {
		t.Fatalf("loading the printed configuration: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(again, c) {
		t.Fatalf("Print → Load changed the configuration:\n got %+v\nwant %+v\nprinted:\n%s", again, c, buf.String())
	}
	return again
}

func TestPrintRoundTrip(t *testing.T) {
	c := validConfig(t)
	roundTrip(t, c)

	// Values YAML would read as something else unless quoted, and extremes.
	c.ClusterID = "true"
	c.Node.Region = "123"
	c.Peers[1].Region = "yes: no # not a comment"
	c.Peers[2].Region = "~"
	c.Listen.Metrics = "[::1]:7301"
	c.Timing.LeaseDuration = 90*time.Minute + 1
	c.Timing.MaxClockDrift = 0
	c.Timing.MaxStaleness = 0
	c.Timing.LeaseReadFallback = false
	c.Storage.SnapshotEntries = 1<<64 - 1
	c.Storage.SegmentBytes = 1 << 62
	c.TLS = TLSConfig{Enabled: true, CAFile: "/etc/georaft/ca.pem", CertFile: "'quoted'.pem", KeyFile: "key with spaces.pem"}
	c.Log.Level = ""
	roundTrip(t, c)

	empty := Defaults()
	roundTrip(t, &empty)
}

func TestPrintShowsTheEffectiveValues(t *testing.T) {
	t.Setenv("GEORAFT_TIMING_LEASE_DURATION", "250ms")
	c := mustLoadFile(t, writeFile(t, threeNodes(t.TempDir())), "log.level=debug")
	var buf bytes.Buffer
	if err := c.Print(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"cluster_id: georaft-test",
		"  lease_duration: 250ms",
		"  level: debug",
		"  region: us-central1 ", // derived from peers
		"peers:\n  - id: 1\n    region: us-central1\n    peer_address: 127.0.0.1:7101\n    client_address: 127.0.0.1:7201\n",
		`  metrics: "" #`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printed configuration lacks %q:\n%s", want, out)
		}
	}
	// Keys in schema order: peers right after listen.
	order := []string{"cluster_id:", "node:", "listen:", "peers:", "timing:", "limits:", "storage:", "tls:", "log:"}
	last := -1
	for _, k := range order {
		i := strings.Index(out, "\n"+k)
		if i < last {
			t.Errorf("%s printed out of order", k)
		}
		last = i
	}
}
