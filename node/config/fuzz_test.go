package config

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

var writeCorpus = flag.Bool("write-corpus", false, "rewrite the committed seed corpus in testdata/fuzz")

func configSeeds() []string {
	return []string{
		threeNodes("/tmp/georaft-fuzz"),
		"",
		"---\n",
		"cluster_id: x\nnode: {id: 2, region: r}\ntiming: {lease_duration: 100ms, heartbeat_interval: 30ms}\n",
		"timing:\n  lease_duraton: 1s\n",
		"timing: 5\n",
		"- a\n- b\n",
		"node:\n  id: [1, 2]\n",
		"peers:\n  - id: 1\n    region: r\n    peer_address: h:1\n    client_address: h:2\n  - 7\n",
		"base: &b\n  id: 1\nnode:\n  <<: *b\n",
		"a: &a [*a]\n",
		"timing:\n  lease_duration: &d 300ms\n  max_staleness: *d\n",
		"node:\n  id: 1\n---\nnode:\n  id: 2\n",
		"limits:\n  max_key_bytes: 1e30\n  max_value_bytes: -5\n  max_request_bytes: 0x10\n",
		"timing:\n  max_clock_drift: .nan\n  lease_duration: 400\n",
		"cluster_id: !!binary aGVsbG8=\n",
		"storage:\n  snapshot_entries: 18446744073709551615\n  segment_bytes: 9223372036854775808\n",
		"? [complex, key]\n: value\n",
		"node:\n  id: 1\n  id: 2\n",
		"tls: {enabled: true, ca_file: /dev/zero}\n",
	}
}

func FuzzLoadConfig(f *testing.F) {
	for _, s := range configSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := loadBytes("fuzz.yaml", data, nil, nil)
		if err != nil {
			return
		}
		// Whatever loads prints, and the print loads back to the same configuration.
		var buf bytes.Buffer
		if err := c.Print(&buf); err != nil {
			t.Fatalf("Print of a loaded configuration: %v", err)
		}
		again, err := loadBytes("printed.yaml", buf.Bytes(), nil, nil)
		if err != nil {
			t.Fatalf("the printed configuration does not load: %v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("Print → Load changed the configuration:\n got %+v\nwant %+v\n%s", again, c, buf.String())
		}
		// Validate must not panic either; keep it away from the real filesystem.
		c.Node.DataDir = t.TempDir()
		c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile = "", "", ""
		_ = c.Validate()
	})
}

// TestWriteSeedCorpus regenerates testdata/fuzz from the seeds above:
// go test ./node/config -run TestWriteSeedCorpus -write-corpus
func TestWriteSeedCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -write-corpus to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzLoadConfig")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range configSeeds() {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(s) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
