package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const fixture = "../../testdata/terraform-output.json"

func TestWritesTheInventoryFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "inventory.yml")
	if err := run([]string{"-in", fixture, "-out", out}, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../testdata/inventory.golden.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("-out wrote something else than the golden inventory:\n%s", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("temporary files left next to the inventory: %v", entries)
	}
}

func TestReadsStandardInput(t *testing.T) {
	in, err := os.Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	if err := run(nil, in, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "georaft_node_id: 5") {
		t.Errorf("stdout inventory lacks node 5:\n%s", out.String())
	}
}

func TestPrint(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-print", "endpoints"}, "34.28.71.140:7200,35.231.18.9:7200,34.105.117.52:7200,34.76.200.13:7200,35.221.160.77:7200\n"},
		{[]string{"-print", "internal-endpoints"}, "10.42.0.2:7200,10.42.1.2:7200,10.42.2.2:7200,10.42.3.2:7200,10.42.4.2:7200\n"},
		{[]string{"-print", "host=europe-west1"}, "34.76.200.13\n"},
		{[]string{"-print", "nodes"}, "georaft-1 us-central1-b\ngeoraft-2 us-east1-b\ngeoraft-3 us-west1-b\ngeoraft-4 europe-west1-b\ngeoraft-5 asia-east1-b\n"},
		{[]string{"-print", "ssh-mode"}, "metadata\n"},
		{[]string{"-print", "project"}, "georaft-prod-4471\n"},
		{[]string{"-print", "data-disks"}, "georaft-1-data us-central1-b\ngeoraft-2-data us-east1-b\ngeoraft-3-data-g2 us-west1-b\n" +
			"georaft-4-data europe-west1-b\ngeoraft-5-data asia-east1-b\n"},
		{[]string{"-print", "host=europe-west1", "-internal"}, "10.42.3.2\n"},
		{[]string{"-print", "certs-flags"}, "--node 1=10.42.0.2,34.28.71.140,georaft-1 --node 2=10.42.1.2,35.231.18.9,georaft-2 " +
			"--node 3=10.42.2.2,34.105.117.52,georaft-3 --node 4=10.42.3.2,34.76.200.13,georaft-4 --node 5=10.42.4.2,35.221.160.77,georaft-5\n"},
	} {
		var out bytes.Buffer
		if err := run(append([]string{"-in", fixture}, tc.args...), nil, &out); err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if out.String() != tc.want {
			t.Errorf("%v printed %q, want %q", tc.args, out.String(), tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(t.TempDir(), "inventory.yml")
	if err := os.WriteFile(kept, []byte("previous\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-in", "absent.json"}, "absent.json"},
		{[]string{"-in", bad, "-out", kept}, "terraform output is empty"},
		{[]string{"-in", fixture, "-print", "host=mars"}, `no node in region "mars"`},
		{[]string{"-in", fixture, "-print", "leader"}, "want endpoints, internal-endpoints, host=REGION, certs-flags, placement, nodes, data-disks, prometheus-targets, ssh-mode or project"},
		{[]string{"-in", fixture, "extra"}, "unexpected arguments"},
	} {
		err := run(tc.args, nil, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
	if got, _ := os.ReadFile(kept); string(got) != "previous\n" {
		t.Errorf("a failed run replaced the existing inventory with %q", got)
	}
}

// -host-keys reads the guest attributes gcloud saved for every node and writes a known_hosts
// that pins each under its instance name; the inventory points ssh at it.
func TestPinsHostKeysFromGuestAttributes(t *testing.T) {
	dir := t.TempDir()
	inv, known := filepath.Join(dir, "inventory.yml"), filepath.Join(dir, "known_hosts")
	if err := run([]string{"-in", fixture, "-out", inv, "-host-keys", "../../testdata/guest-attributes", "-known-hosts", known}, nil, nil); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(known)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")[1:]
	if len(lines) != 15 {
		t.Fatalf("known_hosts has %d keys, want 3 per node:\n%s", len(lines), data)
	}
	if !strings.HasPrefix(lines[0], "georaft-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5") {
		t.Errorf("known_hosts does not start with georaft-1's ed25519 key: %s", lines[0])
	}
	if out, err := exec.Command("ssh-keygen", "-F", "georaft-3", "-f", known).CombinedOutput(); err != nil {
		if _, lookErr := exec.LookPath("ssh-keygen"); lookErr == nil {
			t.Errorf("ssh-keygen -F georaft-3 does not find the host in the known_hosts written: %v\n%s", err, out)
		}
	}
	invData, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	want := "-o UserKnownHostsFile=" + known + " -o StrictHostKeyChecking=yes -o HostKeyAlias=georaft-3"
	if !strings.Contains(string(invData), want) {
		t.Errorf("the inventory does not pin georaft-3's key (%q):\n%s", want, invData)
	}

	// A node without keys yet is an error naming what to do.
	empty := t.TempDir()
	for i := 1; i <= 5; i++ {
		content := "[]\n"
		if i != 4 {
			content = mustRead(t, filepath.Join("../../testdata/guest-attributes", "georaft-"+strconv.Itoa(i)+".json"))
		}
		if err := os.WriteFile(filepath.Join(empty, "georaft-"+strconv.Itoa(i)+".json"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = run([]string{"-in", fixture, "-out", inv, "-host-keys", empty, "-known-hosts", known}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "georaft-4: no host keys in its guest attributes yet") {
		t.Errorf("a node without published host keys: %v", err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
