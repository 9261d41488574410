package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/georaft/georaft/buildinfo"
	"github.com/georaft/georaft/client/cli"
)

func georaft(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func TestExitCodesOfTheCommandLine(t *testing.T) {
	t.Setenv("GEORAFT_ENDPOINTS", "")
	down := closedAddress(t)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"help", []string{"--help"}, cli.ExitOK},
		{"unknown command", []string{"frobnicate"}, cli.ExitUsage},
		{"unknown flag", []string{"get", "k", "--bogus"}, cli.ExitUsage},
		{"missing argument", []string{"get"}, cli.ExitUsage},
		{"extra argument", []string{"set", "k", "v", "w"}, cli.ExitUsage},
		{"bad read mode", []string{"get", "k", "--read", "eventual", "--endpoints", down}, cli.ExitUsage},
		{"bad output", []string{"status", "--output", "xml", "--endpoints", down}, cli.ExitUsage},
		{"no endpoints", []string{"get", "k"}, cli.ExitUsage},
		{"bad endpoint", []string{"get", "k", "--endpoints", "nohostport"}, cli.ExitUsage},
		{"transfer without --to", []string{"transfer-leader", "--endpoints", down}, cli.ExitUsage},
		{"transfer to 0", []string{"transfer-leader", "--to", "0", "--endpoints", down}, cli.ExitUsage},
		{"bench bad ratio", []string{"bench", "--write-ratio", "2", "--endpoints", down}, cli.ExitUsage},
		{"bench bad mode", []string{"bench", "--read-modes", "lease,fast", "--endpoints", down}, cli.ExitUsage},
		{"tune without --rtt", []string{"tune"}, cli.ExitUsage},
		{"tune bad format", []string{"tune", "--rtt", "x.csv", "--format", "toml"}, cli.ExitUsage},
		{"tune missing file", []string{"tune", "--rtt", filepath.Join(t.TempDir(), "none.csv")}, cli.ExitError},
		{"tune bad mix", []string{"tune", "--rtt", "x.csv", "--mix", "a=5"}, cli.ExitUsage},
		{"tune mix twice", []string{"tune", "--rtt", "x.csv", "--mix", "a=5r", "--mix-file", "m.txt"}, cli.ExitUsage},
		{"tune missing mix file", []string{"tune", "--rtt", writeMatrix(t), "--mix-file", filepath.Join(t.TempDir(), "none.mix")}, cli.ExitError},
		{"missing config file", []string{"get", "k", "--config", filepath.Join(t.TempDir(), "node1.yaml")}, cli.ExitError},
		{"get, cluster down", []string{"get", "k", "--endpoints", down, "--timeout", "300ms"}, cli.ExitUnavailable},
		{"set, cluster down", []string{"set", "k", "v", "--endpoints", down, "--timeout", "300ms"}, cli.ExitUnavailable},
		{"status, cluster down", []string{"status", "--endpoints", down, "--timeout", "300ms"}, cli.ExitUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := georaft(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("georaft %v: exit code %d, want %d\nstdout: %s\nstderr: %s", tt.args, code, tt.code, stdout, stderr)
			}
			if code == cli.ExitUsage && !strings.Contains(stderr, "error:") {
				t.Fatalf("usage error without a message on stderr: %q", stderr)
			}
		})
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	stdout, _, code := georaft(t, "", "help")
	if code != 0 {
		t.Fatalf("help: exit code %d", code)
	}
	for _, want := range []string{"Exit codes:", "3    cluster unavailable", "1    not found", "REPL", "stale"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("georaft help lacks %q:\n%s", want, stdout)
		}
	}
}

func TestEndpointsFromEnvironment(t *testing.T) {
	t.Setenv("GEORAFT_ENDPOINTS", closedAddress(t))
	_, stderr, code := georaft(t, "", "get", "k", "--timeout", "200ms")
	if code != cli.ExitUnavailable || !strings.Contains(stderr, "cluster unavailable") {
		t.Fatalf("exit code %d, stderr %q: want the env endpoint tried and found down", code, stderr)
	}
}

func TestJSONOutputOfEveryCommandParses(t *testing.T) {
	down := closedAddress(t)
	rtt := filepath.Join(repoRoot(t), "..", "shared", "geo", "rtt-5-regions.csv")
	if _, err := os.Stat(rtt); err != nil {
		rtt = writeMatrix(t)
	}
	for _, args := range [][]string{
		{"get", "k"}, {"set", "k", "v"}, {"del", "k"}, {"status"}, {"transfer-leader", "--to", "2"},
		{"tune", "--rtt", rtt},
	} {
		args = append(args, "--output", "json", "--endpoints", down, "--timeout", "200ms")
		stdout, stderr, code := georaft(t, "", args...)
		var obj map[string]any
		if err := json.Unmarshal([]byte(stdout), &obj); err != nil {
			t.Fatalf("georaft %v: stdout is not one JSON object: %v\n%s\nstderr: %s", args, err, stdout, stderr)
		}
		if _, ok := obj["ok"]; !ok {
			t.Fatalf("georaft %v: JSON lacks ok: %v", args, obj)
		}
		if obj["ok"] == false && obj["exit_code"] != nil && int(obj["exit_code"].(float64)) != code {
			t.Fatalf("georaft %v: exit_code %v in JSON but %d from the process", args, obj["exit_code"], code)
		}
	}
}

func writeMatrix(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rtt.csv")
	csv := "region,a,b,c\na,0,10,20\nb,10,0,15\nc,20,15,0\n"
	if err := os.WriteFile(p, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTuneWrapsTheTunePackage(t *testing.T) {
	rtt := writeMatrix(t)
	stdout, stderr, code := georaft(t, "", "tune", "--rtt", rtt, "--format", "yaml")
	if code != 0 || !strings.Contains(stdout, "heartbeat_interval") || !strings.Contains(stdout, "lease_duration") {
		t.Fatalf("tune --format yaml: code %d\n%s%s", code, stdout, stderr)
	}
	_, _, code = georaft(t, "", "tune", "--rtt", rtt, "--placement", "1=a,2=b,3=nowhere")
	if code == 0 {
		t.Fatal("tune accepted a placement in a region the matrix lacks")
	}
}

func TestTuneWithAMix(t *testing.T) {
	rtt := writeMatrix(t)
	stdout, stderr, code := georaft(t, "", "tune", "--rtt", rtt, "--mix", "a=900r+10w,*=100r")
	if code != 0 {
		t.Fatalf("tune --mix: code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"read_leases.holders", "placement.preferred_regions", "every candidate, best first"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("tune --mix output lacks %q:\n%s", want, stdout)
		}
	}
	mixFile := filepath.Join(t.TempDir(), "mix.txt")
	if err := os.WriteFile(mixFile, []byte("# per second\na=900r+10w\n*=100r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, _, code := georaft(t, "", "tune", "--rtt", rtt, "--mix-file", mixFile)
	if code != 0 || fromFile != stdout {
		t.Errorf("the same mix from a file gives other output (code %d)", code)
	}
	yamlOut, _, _ := georaft(t, "", "tune", "--rtt", rtt, "--mix", "a=900r+10w,*=100r", "--format", "yaml")
	ansibleOut, _, _ := georaft(t, "", "tune", "--rtt", rtt, "--mix", "a=900r+10w,*=100r", "--format", "ansible")
	for _, want := range []string{"read_leases:\n  holders: ", "placement:\n  preferred_regions: ["} {
		if !strings.Contains(yamlOut, want) {
			t.Errorf("--format yaml lacks %q:\n%s", want, yamlOut)
		}
	}
	for _, want := range []string{"\ngeoraft_read_lease_holders: ", "\ngeoraft_preferred_regions: ["} {
		if !strings.Contains(ansibleOut, want) {
			t.Errorf("--format ansible lacks %q:\n%s", want, ansibleOut)
		}
	}
}

// A usage error names the flag and quotes the part at fault.
func TestTuneMixErrorsNameTheBadPart(t *testing.T) {
	rtt := writeMatrix(t)
	for _, tc := range []struct {
		args     []string
		mentions []string
	}{
		{[]string{"--mix", "a=900r+10x"}, []string{"--mix", `"a=900r+10x"`, `"10x" has no unit`}},
		{[]string{"--mix", "a=900r,,b=1w"}, []string{"--mix", "empty entry"}},
		{[]string{"--mix", "aa=5r"}, []string{`region "aa" is not in the rtt matrix`, "did you mean a?"}},
		{[]string{"--mix", "a=5r", "--fsync", "-1ms"}, []string{"--fsync -1ms"}},
	} {
		args := append([]string{"tune", "--rtt", rtt}, tc.args...)
		_, stderr, code := georaft(t, "", args...)
		if code != cli.ExitUsage {
			t.Errorf("georaft %v: exit %d, want %d", args, code, cli.ExitUsage)
		}
		for _, want := range tc.mentions {
			if !strings.Contains(stderr, want) {
				t.Errorf("georaft %v: stderr %q lacks %q", args, stderr, want)
			}
		}
	}
	mixFile := filepath.Join(t.TempDir(), "mix.txt")
	if err := os.WriteFile(mixFile, []byte("a=1r\nb=2q\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := georaft(t, "", "tune", "--rtt", rtt, "--mix-file", mixFile)
	if code != cli.ExitUsage || !strings.Contains(stderr, mixFile+" line 2") || !strings.Contains(stderr, `"2q"`) {
		t.Errorf("bad mix file: exit %d, stderr %q; want usage naming the file, line 2 and the term", code, stderr)
	}
}

// The JSON output of tune with a mix is the same on every run and carries the plan with
// the node config's keys.
func TestTuneJSONIsStable(t *testing.T) {
	rtt := writeMatrix(t)
	args := []string{"tune", "--rtt", rtt, "--mix", "a=900r+10w,b=5w,*=100r", "--output", "json"}
	first, stderr, code := georaft(t, "", args...)
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	if again, _, _ := georaft(t, "", args...); again != first {
		t.Fatal("two runs gave different JSON")
	}
	var out struct {
		OK   bool `json:"ok"`
		Plan struct {
			Holders []string `json:"holders"`
			Config  struct {
				ReadLeases struct {
					Holders any `json:"holders"`
				} `json:"read_leases"`
				Placement struct {
					PreferredRegions []string `json:"preferred_regions"`
				} `json:"placement"`
			} `json:"config"`
			Candidates []map[string]any `json:"candidates"`
		} `json:"plan"`
		LeaderRegion string `json:"leader_region"`
	}
	if err := json.Unmarshal([]byte(first), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, first)
	}
	p := out.Plan
	if !out.OK || len(p.Candidates) != 8*3 || len(p.Config.Placement.PreferredRegions) != 3 || p.Config.ReadLeases.Holders == nil {
		t.Fatalf("plan %+v", p)
	}
	if out.LeaderRegion != p.Config.Placement.PreferredRegions[0] {
		t.Errorf("timing expects the leader in %s, the plan prefers %s", out.LeaderRegion, p.Config.Placement.PreferredRegions[0])
	}
}

// buildBinary compiles georaft into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "georaft")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(repoRoot(t), "client", "cmd", "georaft")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The built binary reads commands from a pipe: no prompt, no escape codes, a one-line hint
// per bad command, and the exit code of the last failed command.
func TestBinaryWithPipedStdin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	cmd := exec.Command(bin, "--endpoints", closedAddress(t), "--timeout", "300ms")
	cmd.Stdin = strings.NewReader("help\nBOGUS\nmode index\nGET k\nMODE\nquit\nSET never run\n")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != cli.ExitUnavailable {
		t.Fatalf("exit: %v, want code %d (the GET that found no cluster)\nstdout: %s\nstderr: %s", err, cli.ExitUnavailable, out.String(), errOut.String())
	}
	all := out.String() + errOut.String()
	if strings.Contains(all, "\x1b") || strings.Contains(all, "georaft>") {
		t.Fatalf("piped session shows a prompt or escape codes:\n%q", all)
	}
	if !strings.Contains(out.String(), "read mode: index") || !strings.Contains(errOut.String(), `unknown command "BOGUS"`) {
		t.Fatalf("unexpected output:\nstdout: %s\nstderr: %s", out.String(), errOut.String())
	}
	if strings.Contains(all, "never") {
		t.Fatal("a command after quit ran")
	}
	if lines := strings.Count(strings.TrimSpace(errOut.String()), "\n") + 1; lines != 2 {
		t.Fatalf("stderr has %d lines, want 2 (one per failed command):\n%s", lines, errOut.String())
	}
}

// Mistyped commands get the nearest one suggested; usage errors are JSON under -o json;
// a bench with nothing to run is a usage error.
func TestUsageErrorsHelp(t *testing.T) {
	_, stderr, code := georaft(t, "", "stauts")
	if code != cli.ExitUsage || !strings.Contains(stderr, `unknown command "stauts"; did you mean status?`) {
		t.Errorf("georaft stauts: exit %d, stderr %q", code, stderr)
	}
	for _, args := range [][]string{{"--output", "json", "frobnicate"}, {"get", "-o", "json"}, {"get", "k", "--bogus", "--output=json"}} {
		stdout, stderr, code := georaft(t, "", args...)
		var obj struct {
			OK       bool   `json:"ok"`
			Kind     string `json:"kind"`
			ExitCode int    `json:"exit_code"`
			Error    string `json:"error"`
		}
		if err := json.Unmarshal([]byte(stdout), &obj); err != nil || obj.OK || obj.Kind != "usage" || obj.ExitCode != cli.ExitUsage || obj.Error == "" || code != cli.ExitUsage {
			t.Errorf("georaft %v: exit %d, stdout %q (%v), stderr %q: want a JSON usage error", args, code, stdout, err, stderr)
		}
	}
	_, stderr, code = georaft(t, "", "bench", "--read-modes", "", "--write-phase=false", "--endpoints", closedAddress(t))
	if code != cli.ExitUsage || !strings.Contains(stderr, "nothing to run") {
		t.Errorf("bench with nothing to run: exit %d, stderr %q", code, stderr)
	}
}

// georaft version and --version name this build, from the build information.
func TestVersionCommand(t *testing.T) {
	want := "georaft " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if stdout, _, code := georaft(t, "", args...); code != 0 || stdout != want {
			t.Errorf("georaft %v: exit %d, %q; want %q", args, code, stdout, want)
		}
	}
	stdout, _, _ := georaft(t, "", "version", "-o", "json")
	var v struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || v.Version == "" || v.GoVersion != runtime.Version() {
		t.Errorf("version -o json: %v %q", err, stdout)
	}
}
