package main

import (
	"bytes"
	"os"
	"path/filepath"
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
		{[]string{"-in", fixture, "-print", "leader"}, "want endpoints, internal-endpoints, host=REGION or certs-flags"},
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
