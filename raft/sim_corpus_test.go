package raft

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// corpusEntry is one line of testdata/sim-corpus.txt.
type corpusEntry struct {
	seed    int64
	setup   string
	finding string
	what    string
}

func readCorpus(path string) ([]corpusEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open seed corpus: %w", err)
	}
	defer f.Close()
	var out []corpusEntry
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) < 3 {
			return nil, fmt.Errorf("%s:%d: want seed, setup, finding and a description, got %q", path, line, text)
		}
		seed, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || seed < 0 {
			return nil, fmt.Errorf("%s:%d: bad seed %q", path, line, fields[0])
		}
		if fields[1] != "sim" && fields[1] != "adversarial" {
			return nil, fmt.Errorf("%s:%d: unknown setup %q (want sim or adversarial)", path, line, fields[1])
		}
		out = append(out, corpusEntry{seed: seed, setup: fields[1], finding: fields[2], what: strings.Join(fields[3:], " ")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read seed corpus %s: %w", path, err)
	}
	return out, nil
}

// TestSimulationCorpus replays every seed that once found a bug.
func TestSimulationCorpus(t *testing.T) {
	corpus, err := readCorpus("testdata/sim-corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(corpus) == 0 {
		t.Fatal("the seed corpus is empty")
	}
	for _, c := range corpus {
		t.Run(fmt.Sprintf("%s-%d-%s", c.setup, c.seed, c.finding), func(t *testing.T) {
			t.Parallel()
			p := randomParams(c.seed)
			test := "TestSimulation"
			if c.setup == "adversarial" {
				p = adversarialParams(c.seed)
				test = "TestAdversarialSimulationClean"
			}
			out := runOne(p, nil)
			if out.failure != nil {
				t.Logf("this seed found %s before: %s", c.finding, c.what)
				reportFailure(t, test, out)
			}
		})
	}
}
