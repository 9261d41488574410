package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/readmode"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line string
		want Command
	}{
		{"SET x 5", Command{Verb: VerbSet, Key: "x", Value: "5"}},
		{"set x 5", Command{Verb: VerbSet, Key: "x", Value: "5"}},
		{"  sEt   x   5  ", Command{Verb: VerbSet, Key: "x", Value: "5"}},
		{`SET greeting "hello world"`, Command{Verb: VerbSet, Key: "greeting", Value: "hello world"}},
		{`SET k 'single "quoted"'`, Command{Verb: VerbSet, Key: "k", Value: `single "quoted"`}},
		{`SET k "esc \" \\ \n"`, Command{Verb: VerbSet, Key: "k", Value: "esc \" \\ \n"}},
		{`SET k ""`, Command{Verb: VerbSet, Key: "k", Value: ""}},
		{`SET "my key" a"b c"d`, Command{Verb: VerbSet, Key: "my key", Value: "ab cd"}},
		{"SET k héllo→", Command{Verb: VerbSet, Key: "k", Value: "héllo→"}},
		{"GET x", Command{Verb: VerbGet, Key: "x"}},
		{"get x STALE", Command{Verb: VerbGet, Key: "x", Mode: readmode.Stale, HasMode: true}},
		{"DEL x", Command{Verb: VerbDel, Key: "x"}},
		{"delete x", Command{Verb: VerbDel, Key: "x"}},
		{"STATUS", Command{Verb: VerbStatus}},
		{"mode", Command{Verb: VerbMode}},
		{"MODE index", Command{Verb: VerbMode, Mode: readmode.Index, HasMode: true}},
		{"help", Command{Verb: VerbHelp}},
		{"?", Command{Verb: VerbHelp}},
		{"quit", Command{Verb: VerbQuit}},
		{"Exit", Command{Verb: VerbQuit}},
		{"", Command{Verb: VerbNone}},
		{"   \t ", Command{Verb: VerbNone}},
		{"# a comment", Command{Verb: VerbNone}},
		{"GET #notacomment", Command{Verb: VerbGet, Key: "#notacomment"}},
	}
	for _, tt := range tests {
		got, err := ParseCommand(tt.line)
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", tt.line, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseCommand(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestParseCommandRejectsWithAHint(t *testing.T) {
	tests := []struct {
		line string
		hint string // a fragment of the one-line hint
	}{
		{"SET x", "SET key value"},
		{"SET x 1 2", "quote spaces"},
		{"SET", "SET key value"},
		{"GET", "GET key"},
		{"GET x y z", "GET key"},
		{"GET x eventual", "GET key"},
		{"DEL", "DEL key"},
		{"DEL a b", "DEL key"},
		{"MODE fast", "MODE"},
		{"MODE a b", "MODE"},
		{"STATUS now", "STATUS"},
		{"QUIT please", "QUIT"},
		{"FLUSHALL", "SET key value | GET key"},
		{`SET k "unterminated`, "quote"},
		{`SET k 'unterminated`, "quote"},
		{`GET ""`, "GET key"},
	}
	for _, tt := range tests {
		_, err := ParseCommand(tt.line)
		var usage *UsageError
		if !errors.As(err, &usage) {
			t.Errorf("ParseCommand(%q) = %v, want a usage error", tt.line, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tt.hint) || strings.Contains(msg, "\n") {
			t.Errorf("ParseCommand(%q) error %q: want one line containing %q", tt.line, msg, tt.hint)
		}
		if ExitCode(err) != ExitUsage {
			t.Errorf("ParseCommand(%q): exit code %d, want %d", tt.line, ExitCode(err), ExitUsage)
		}
	}
}

// FuzzParseCommand: the parser never panics, errors are one line, and a parsed command
// printed back with String parses to the same command.
func FuzzParseCommand(f *testing.F) {
	for _, seed := range []string{"SET x 5", `SET k "a b"`, "GET x stale", "MODE", "DEL 'x y'", `"`, "'", `\`, "# c", "SET k \"\\", "\x00", "GET \xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := ParseCommand(line)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseCommand(%q): multi-line error %q", line, err)
			}
			return
		}
		if cmd.Verb == VerbNone {
			return
		}
		again, err := ParseCommand(cmd.String())
		if err != nil {
			t.Fatalf("ParseCommand(%q) = %+v, whose String %q does not parse: %v", line, cmd, cmd.String(), err)
		}
		if again != cmd {
			t.Fatalf("ParseCommand(%q) = %+v, but its String %q parses to %+v", line, cmd, cmd.String(), again)
		}
	})
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		code int
		kind string
	}{
		{nil, ExitOK, ""},
		{ErrNotFound, ExitNotFound, "not_found"},
		{&UsageError{Problem: "x"}, ExitUsage, "usage"},
		{&client.UnavailableError{Deadline: true}, ExitUnavailable, "unavailable"},
		{fmt.Errorf("wrapped: %w", &client.UnavailableError{Reason: "NO_LEADER"}), ExitUnavailable, "unavailable"},
		{context.DeadlineExceeded, ExitUnavailable, "unavailable"},
		{&client.InvalidArgumentError{Field: "key"}, ExitRefused, "invalid_argument"},
		{&client.RefusedError{}, ExitRefused, "refused"},
		{fmt.Errorf("get: %w", context.Canceled), ExitInterrupted, "interrupted"},
		{errors.New("disk full"), ExitError, "error"},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.code)
		}
		if got := ErrorKind(tt.err); got != tt.kind {
			t.Errorf("ErrorKind(%v) = %q, want %q", tt.err, got, tt.kind)
		}
	}
}

// unreachableClient is a real client whose only endpoint refuses connections: commands
// that need the cluster fail with "cluster unavailable" after the timeout.
func unreachableClient(t *testing.T) *client.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := client.New(client.Options{Endpoints: []string{addr}, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func runREPL(t *testing.T, input string, jsonOut bool) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	r := &REPL{
		Session: &Session{Client: unreachableClient(t), Printer: Printer{Out: &out, Err: &errOut, JSON: jsonOut}},
		In:      strings.NewReader(input),
	}
	code = r.Run(context.Background())
	return out.String(), errOut.String(), code
}

func TestREPLThroughStdin(t *testing.T) {
	input := strings.Join([]string{
		"HELP",
		"bogus command",
		`SET k "unterminated`,
		"mode index",
		"MODE",
		"",
		"# comment",
		"GET k",
		"SET x",
		"QUIT",
		"SET never run",
	}, "\n")
	stdout, stderr, code := runREPL(t, input, false)
	if !strings.Contains(stdout, "Commands (any case)") {
		t.Fatalf("HELP printed nothing useful:\n%s", stdout)
	}
	if strings.Count(stdout, "read mode: index") != 2 {
		t.Fatalf("MODE index then MODE should both say index:\n%s", stdout)
	}
	errLines := strings.Split(strings.TrimSpace(stderr), "\n")
	wantErrs := []string{`unknown command "bogus"`, "unterminated double quote", "cluster unavailable", "SET takes a key and a value"}
	if len(errLines) != len(wantErrs) {
		t.Fatalf("stderr has %d lines, want one per failed command (%d):\n%s", len(errLines), len(wantErrs), stderr)
	}
	for i, want := range wantErrs {
		if !strings.Contains(errLines[i], want) {
			t.Fatalf("error line %d = %q, want %q", i, errLines[i], want)
		}
	}
	if strings.Contains(stdout+stderr, "never run") {
		t.Fatal("a line after QUIT was executed")
	}
	if strings.Contains(stdout+stderr, "georaft>") || strings.Contains(stdout+stderr, "\x1b") {
		t.Fatal("piped input got a prompt or escape codes")
	}
	// The last failure was the usage error of "SET x".
	if code != ExitUsage {
		t.Fatalf("exit code %d, want %d (the last failed command's)", code, ExitUsage)
	}

	_, _, code = runREPL(t, "HELP\nMODE stale\n", false)
	if code != ExitOK {
		t.Fatalf("exit code %d after only successful commands, want 0", code)
	}
	_, _, code = runREPL(t, "FOO\nGET k\nHELP\n", false)
	if code != ExitUnavailable {
		t.Fatalf("exit code %d, want %d from the GET that found no cluster", code, ExitUnavailable)
	}
}

func TestREPLJSONOutputIsOneObjectPerLine(t *testing.T) {
	stdout, stderr, _ := runREPL(t, "HELP\nMODE log\nnope\nGET k\nSTATUS\n", true)
	if stderr != "" {
		t.Fatalf("JSON mode wrote to stderr: %q", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want one per command:\n%s", len(lines), stdout)
	}
	var objs []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		objs = append(objs, m)
	}
	if objs[1]["mode"] != "log" || objs[1]["ok"] != true {
		t.Fatalf("MODE log → %v", objs[1])
	}
	if objs[2]["ok"] != false || objs[2]["kind"] != "usage" || objs[2]["exit_code"] != float64(ExitUsage) {
		t.Fatalf("bad command → %v", objs[2])
	}
	if objs[3]["kind"] != "unavailable" || objs[3]["exit_code"] != float64(ExitUnavailable) || objs[3]["op"] != "get" {
		t.Fatalf("GET without a cluster → %v", objs[3])
	}
	nodes, ok := objs[4]["nodes"].([]any)
	if !ok || len(nodes) != 1 || nodes[0].(map[string]any)["reachable"] != false {
		t.Fatalf("STATUS → %v, want one unreachable node", objs[4])
	}
}

func TestSessionSurvivesPanics(t *testing.T) {
	var out, errOut bytes.Buffer
	// A nil client makes every cluster command panic inside the session: the REPL must
	// report it and go on.
	s := &Session{Printer: Printer{Out: &out, Err: &errOut}}
	code, quit := s.Execute(context.Background(), "GET k")
	if code != ExitError || quit {
		t.Fatalf("Execute after a panic = %d, %v; want %d and no quit", code, quit, ExitError)
	}
	if !strings.Contains(errOut.String(), "internal error") {
		t.Fatalf("stderr = %q, want an internal error report", errOut.String())
	}
	if code, _ := s.Execute(context.Background(), "MODE stale"); code != ExitOK {
		t.Fatalf("the session did not recover: MODE exit code %d", code)
	}
}

func TestDisplayValue(t *testing.T) {
	tests := map[string]string{
		"hello world": "hello world",
		"héllo":       "héllo",
		"a\nb":        `"a\nb"`,
		"\x1b[2J":     `"\x1b[2J"`,
		"\xff":        `"\xff"`,
	}
	for in, want := range tests {
		if got := DisplayValue([]byte(in)); got != want {
			t.Errorf("DisplayValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", "two words", `q"uote`, `back\slash`, "new\nline", "#hash", "'"} {
		words, err := splitWords(Quote(s))
		if err != nil || len(words) != 1 || words[0] != s {
			t.Errorf("Quote(%q) = %s splits to %q (%v)", s, Quote(s), words, err)
		}
	}
}

// A read served in another mode than asked says so on stderr, in English.
func TestGetNotesAFallbackRead(t *testing.T) {
	var out, errOut bytes.Buffer
	p := Printer{Out: &out, Err: &errOut}
	p.Get("k", client.GetResult{Found: true, Value: []byte("v"), Requested: readmode.Lease, Served: readmode.Index, Header: client.Header{NodeID: 2}})
	if got := out.String(); got != "v\n" {
		t.Fatalf("stdout %q, want the value alone", got)
	}
	want := "(asked for a lease read, served as an index read by node 2: still linearizable)\n"
	if got := errOut.String(); got != want {
		t.Fatalf("stderr %q, want %q", got, want)
	}
}

// A mistyped REPL command gets the nearest one suggested.
func TestUnknownCommandSuggestsTheNearest(t *testing.T) {
	for typed, want := range map[string]string{"GTE k": "did you mean GET?", "stauts": "did you mean STATUS?", "xyzzy": ""} {
		_, err := ParseCommand(typed)
		if err == nil {
			t.Fatalf("%q parsed", typed)
		}
		if got := err.Error(); (want == "") != !strings.Contains(got, "did you mean") || !strings.Contains(got, want) {
			t.Errorf("%q: %v, want %q", typed, err, want)
		}
	}
}

// In a REPL that runs the etcd-style verbs, a typo of one of them is suggested too; the
// verbs themselves go to Extra, with their words.
func TestREPLSuggestsAndRunsTheEtcdVerbs(t *testing.T) {
	var out, errOut bytes.Buffer
	var ran []string
	s := &Session{Printer: Printer{Out: &out, Err: &errOut}}
	if code, _ := s.Execute(context.Background(), "wacth k"); code != ExitUsage || strings.Contains(errOut.String(), "WATCH") {
		t.Fatalf("without Extra: exit %d, %q; want a usage error suggesting no etcd verb", code, errOut.String())
	}
	errOut.Reset()
	s.Extra = func(_ context.Context, words []string) int {
		ran = append(ran, strings.Join(words, " "))
		return ExitNotFound
	}
	if code, _ := s.Execute(context.Background(), "wacth k"); code != ExitUsage || !strings.Contains(errOut.String(), "did you mean WATCH?") {
		t.Fatalf("with Extra: exit %d, %q; want a usage error suggesting WATCH", code, errOut.String())
	}
	if code, _ := s.Execute(context.Background(), `put k "a b"`); code != ExitNotFound || len(ran) != 1 || ran[0] != "put k a b" {
		t.Fatalf("put: exit %d, ran %q; want Extra's exit code and its words", code, ran)
	}
}

// Ctrl-C at an empty interactive prompt leaves the REPL with exit code 130.
func TestInterruptAtThePromptExits130(t *testing.T) {
	c, err := client.New(client.Options{Endpoints: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out, errOut bytes.Buffer
	r := &REPL{Session: &Session{Client: c, Printer: Printer{Out: &out, Err: &errOut}}, Interactive: true,
		In: io.NopCloser(strings.NewReader("\x03"))}
	if code := r.Run(context.Background()); code != ExitInterrupted {
		t.Fatalf("exit code %d after Ctrl-C at the prompt, want %d\nstdout: %s\nstderr: %s", code, ExitInterrupted, out.String(), errOut.String())
	}
}

// A session that runs the etcd-style verbs lists each of them in HELP; one without does not.
func TestREPLHelpListsTheEtcdVerbsItRuns(t *testing.T) {
	for _, extra := range []bool{false, true} {
		var out bytes.Buffer
		s := &Session{Client: unreachableClient(t), Printer: Printer{Out: &out, Err: &out}}
		if extra {
			s.Extra = func(context.Context, []string) int { return ExitOK }
		}
		r := &REPL{Session: s, In: strings.NewReader("HELP\n")}
		if code := r.Run(context.Background()); code != ExitOK {
			t.Fatalf("extra=%v: HELP exit code %d", extra, code)
		}
		for _, verb := range etcdVerbs {
			listed := strings.Contains(out.String(), "\n  "+verb+" ")
			if listed != extra {
				t.Fatalf("extra=%v: HELP lists %s: %v\n%s", extra, verb, listed, out.String())
			}
		}
	}
}
