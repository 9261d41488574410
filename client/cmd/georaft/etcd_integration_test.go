package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/georaft/georaft/client/cli"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
)

// The etcd-style verbs against a real cluster, one-shot and in the REPL.
func TestIntegrationEtcdVerbs(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	eps := "--endpoints=" + strings.Join(cl.ClientAddrs(), ",")
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := georaft(t, stdin, append(args, eps)...)
		if code != 0 {
			t.Fatalf("georaft %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	// A value with every byte, from a file, read back byte for byte.
	blob := make([]byte, 256)
	for i := range blob {
		blob[i] = byte(i)
	}
	file := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(file, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	run("", "put", "/app/blob", "@"+file)
	if got := run("", "get", "/app/blob", "-o", "raw"); got != string(blob) {
		t.Fatalf("raw value differs: %q", got)
	}
	run("from stdin\n", "put", "/app/stdin")
	if got := run("", "get", "/app/stdin", "--print-value-only"); got != "from stdin\n\n" {
		t.Fatalf("value from stdin: %q", got)
	}
	run("", "put", "/app/x", "1")
	if got := run("", "get", "/app/", "--prefix", "--keys-only"); got != "/app/blob\n/app/stdin\n/app/x\n" {
		t.Fatalf("get --prefix --keys-only: %q", got)
	}
	if got := run("", "get", "/app/", "--prefix", "--limit", "1", "--sort-by", "key", "--order", "descend", "--keys-only"); got != "/app/x\n" {
		t.Fatalf("get --limit --sort-by: %q", got)
	}
	if got := run("", "get", "/app/", "--prefix", "--count-only"); got != "3\n" {
		t.Fatalf("get --count-only: %q", got)
	}
	if out := run("value(\"/app/x\") = \"1\"\n\nput /app/x 2\n\nget /app/x\n", "txn"); !strings.HasPrefix(out, "SUCCESS") {
		t.Fatalf("txn: %q", out)
	}
	if _, _, code := georaft(t, "value(\"/app/x\") = \"1\"\n\nput /app/x 3\n\n", "txn", eps); code != cli.ExitNotFound {
		t.Fatalf("a failed txn exits %d, want %d", code, cli.ExitNotFound)
	}
	// History: the first value of /app/x is still there at its revision.
	if got := run("", "watch", "/app/x", "--rev", "1", "--count", "2"); got != "PUT\n/app/x\n1\nPUT\n/app/x\n2\n" {
		t.Fatalf("watch --rev: %q", got)
	}
	out := run("", "lease", "grant", "60")
	m := regexp.MustCompile(`lease ([0-9a-f]+) granted`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("lease grant: %q", out)
	}
	run("", "put", "/app/eph", "v", "--lease", m[1])
	if out := run("", "lease", "keep-alive", "--once", m[1]); !strings.Contains(out, "TTL(60)") {
		t.Fatalf("keep-alive: %q", out)
	}
	if out := run("", "lease", "timetolive", m[1], "--keys"); !strings.Contains(out, "attached keys(/app/eph)") {
		t.Fatalf("timetolive: %q", out)
	}
	run("", "lease", "revoke", m[1])
	if _, _, code := georaft(t, "", "get", "/app/eph", "--print-value-only", eps); code != cli.ExitNotFound {
		t.Fatalf("key outlived its lease: exit %d", code)
	}
	// The REPL takes the same verbs, and SET/GET/DEL still work.
	out, errOut, code := georaft(t, "PUT /r/a 1\nTXN value(\"/r/a\") = \"1\" THEN put /r/a 2; put /r/b 3 ELSE get /r/a\nget /r/ --prefix\nSET plain v\nGET plain\n", eps)
	if code != 0 || !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "/r/a\n2\n/r/b\n3\n") || !strings.HasSuffix(out, "v\n") {
		t.Fatalf("REPL: exit %d\n%s%s", code, out, errOut)
	}
	rev := regexp.MustCompile(`"revision":\s*"(\d+)"`).FindStringSubmatch(run("", "get", "/r/a", "--prefix", "-o", "json"))
	if rev == nil {
		t.Fatal("no revision in get -o json")
	}
	if out := run("", "compact", rev[1]); !strings.Contains(out, "compacted revision "+rev[1]) {
		t.Fatalf("compact: %q", out)
	}
	if _, errOut, code := georaft(t, "", "get", "/app/x", "--rev", "2", eps); code == 0 || !strings.Contains(errOut, "compacted") {
		t.Fatalf("read below the compaction: exit %d %q", code, errOut)
	}
}
