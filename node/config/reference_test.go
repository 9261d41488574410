package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's configuration reference from the schema")

const (
	referenceStart = "<!-- config-reference:start (generated: go test ./node/config -run TestReadmeConfigReference -update-readme) -->\n"
	referenceEnd   = "<!-- config-reference:end -->"
)

// The README's configuration reference lists every key, environment variable and flag the
// loader knows, with the defaults it applies.
func TestReadmeConfigReference(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, referenceStart)
	end := strings.Index(text, referenceEnd)
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the markers around the configuration reference:\n%s...%s", referenceStart, referenceEnd)
	}
	want := ReferenceTable()
	got := text[start+len(referenceStart) : end]
	if got == want {
		return
	}
	if *updateReadme {
		text = text[:start+len(referenceStart)] + want + text[end:]
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README.md's configuration reference is out of date; run\n  go test ./node/config -run TestReadmeConfigReference -update-readme")
}

// Every key of the schema appears in the reference with its environment variable.
func TestReferenceTableNamesEveryKey(t *testing.T) {
	table := ReferenceTable()
	for _, key := range allKeys() {
		if !strings.Contains(table, "`"+key+"`") {
			t.Errorf("reference lacks %s", key)
		}
		if !strings.Contains(key, "[]") && !strings.Contains(table, "`"+envName(key)+"`") {
			t.Errorf("reference lacks %s", envName(key))
		}
	}
	for _, f := range fields {
		if f.flag != "" && !strings.Contains(table, "`--"+f.flag+"`") {
			t.Errorf("reference lacks --%s", f.flag)
		}
	}
}
