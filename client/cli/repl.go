package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"

	"github.com/chzyer/readline"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/readmode"
)

// Session executes REPL commands against a cluster and prints their results.
type Session struct {
	Client  *client.Client
	Printer Printer
	// Mode is the read mode of GET without an explicit mode; MODE changes it.
	Mode readmode.Mode
	// Extra runs the etcd-style verbs (put, txn, watch, lease, compact, get with options)
	// as the one-shot commands do, and returns the exit code; nil: they are unknown.
	Extra func(ctx context.Context, words []string) int
}

// Execute runs one line and prints its outcome. It returns the command's exit code and
// whether the line asked to leave. It never panics: a bug in a command is reported as an
// internal error and the REPL goes on.
func (s *Session) Execute(ctx context.Context, line string) (code int, quit bool) {
	defer func() {
		if r := recover(); r != nil {
			s.Printer.Error("", fmt.Errorf("internal error (please report): %v", r))
			if os.Getenv("GEORAFT_DEBUG") != "" {
				fmt.Fprintf(s.Printer.Err, "%s\n", debug.Stack())
			}
			code, quit = ExitError, false
		}
	}()
	if s.Extra != nil {
		if words, err := splitWords(line); err == nil && etcdVerb(words) {
			return s.Extra(ctx, words), false
		}
	}
	var more []string
	if s.Extra != nil {
		more = etcdVerbs
	}
	cmd, err := parseCommand(line, more)
	if err != nil {
		s.Printer.Error("", err)
		return ExitCode(err), false
	}
	return s.run(ctx, cmd)
}

func (s *Session) run(ctx context.Context, cmd Command) (int, bool) {
	fail := func(op string, err error) (int, bool) {
		s.Printer.Error(op, err)
		return ExitCode(err), false
	}
	switch cmd.Verb {
	case VerbNone:
		return ExitOK, false
	case VerbQuit:
		return ExitOK, true
	case VerbHelp:
		s.Printer.Help(s.Extra != nil)
	case VerbMode:
		if cmd.HasMode {
			s.Mode = cmd.Mode
		}
		s.Printer.Mode(s.Mode)
	case VerbSet:
		res, err := s.Client.Set(ctx, cmd.Key, []byte(cmd.Value))
		if err != nil {
			return fail("set", err)
		}
		s.Printer.Set(cmd.Key, res)
	case VerbGet:
		mode := s.Mode
		if cmd.HasMode {
			mode = cmd.Mode
		}
		res, err := s.Client.Get(ctx, cmd.Key, mode)
		if err != nil {
			return fail("get", err)
		}
		s.Printer.Get(cmd.Key, res)
		if !res.Found {
			return ExitNotFound, false
		}
	case VerbDel:
		res, err := s.Client.Delete(ctx, cmd.Key)
		if err != nil {
			return fail("delete", err)
		}
		s.Printer.Del(cmd.Key, res)
	case VerbStatus:
		nodes := s.Client.StatusAll(ctx)
		s.Printer.Status(nodes, KnownIDs(s.Client))
		if !client.Summarize(nodes).Healthy() {
			return ExitUnavailable, false
		}
	}
	return ExitOK, false
}

// etcdVerbs are the etcd-style verbs a session with Extra runs, for did-you-mean.
var etcdVerbs = []string{"PUT", "TXN", "WATCH", "LEASE", "COMPACT", "READ-LEASES", "MEMBER"}

// etcdVerb reports whether a line is one of the etcd-style verbs (put, txn, watch, lease,
// compact, or get with options), which the command line's own commands run.
func etcdVerb(words []string) bool {
	if len(words) == 0 {
		return false
	}
	switch strings.ToLower(words[0]) {
	case "put", "txn", "watch", "lease", "compact", "read-leases", "member":
		return true
	case "get":
		for _, w := range words[1:] {
			if strings.HasPrefix(w, "--") {
				return true
			}
		}
	}
	return false
}

// KnownIDs maps endpoints to the node ids the client knows they reach.
func KnownIDs(c *client.Client) map[string]uint64 {
	ids := map[string]uint64{}
	for _, n := range c.Nodes() {
		ids[n.Address] = n.NodeID
	}
	return ids
}

// REPL reads commands line by line and executes them.
type REPL struct {
	Session *Session
	In      io.Reader
	// Interactive selects line editing, a prompt and history (stdin and stdout are a
	// terminal); otherwise lines are read plainly, with no prompt and no escape codes.
	Interactive bool
	HistoryFile string
	// CatchInterrupt makes Ctrl-C cancel the running command instead of the process.
	CatchInterrupt bool
}

// Run runs the REPL until QUIT, end of input, or ctx ends. Interactive, it returns 0, or
// 130 when left with Ctrl-C at an empty prompt; reading piped input, the exit code of the
// last command that did not succeed (0 if all did), so a script can tell that something
// went wrong.
func (r *REPL) Run(ctx context.Context) int {
	if r.Interactive {
		return r.runInteractive(ctx)
	}
	last := ExitOK
	in := bufio.NewReader(r.In)
	for ctx.Err() == nil {
		// ReadString has no line length limit, unlike bufio.Scanner: values may be large.
		line, err := in.ReadString('\n')
		if line != "" {
			code, quit := r.execute(ctx, strings.TrimRight(line, "\r\n"))
			if code != ExitOK {
				last = code
			}
			if quit {
				return last
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.Session.Printer.Error("", fmt.Errorf("read input: %w", err))
				return ExitError
			}
			break
		}
	}
	return last
}

func (r *REPL) execute(ctx context.Context, line string) (int, bool) {
	if !r.CatchInterrupt {
		return r.Session.Execute(ctx, line)
	}
	cmdCtx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	return r.Session.Execute(cmdCtx, line)
}

func (r *REPL) prompt() string {
	if r.Session.Mode == readmode.Lease {
		return "georaft> "
	}
	return fmt.Sprintf("georaft (%s)> ", r.Session.Mode)
}

func (r *REPL) runInteractive(ctx context.Context) int {
	modes := func() []readline.PrefixCompleterInterface {
		var items []readline.PrefixCompleterInterface
		for _, m := range readmode.All {
			items = append(items, readline.PcItem(m.String()))
		}
		return items
	}
	completer := readline.NewPrefixCompleter(
		readline.PcItem("SET"), readline.PcItem("GET"), readline.PcItem("DEL"), readline.PcItem("STATUS"),
		readline.PcItem("MODE", modes()...), readline.PcItem("HELP"), readline.PcItem("QUIT"), readline.PcItem("EXIT"),
	)
	cfg := &readline.Config{
		Prompt:            r.prompt(),
		HistoryFile:       r.HistoryFile,
		AutoComplete:      completer,
		InterruptPrompt:   "^C",
		EOFPrompt:         "",
		HistorySearchFold: true,
		Stdout:            r.Session.Printer.Out,
		Stderr:            r.Session.Printer.Err,
	}
	if rc, ok := r.In.(io.ReadCloser); ok && r.In != os.Stdin {
		cfg.Stdin = rc
	}
	rl, err := readline.NewEx(cfg)
	if err != nil {
		// No usable terminal after all: fall back to plain lines.
		r.Session.Printer.Error("", fmt.Errorf("line editing unavailable (%v); reading plain lines", err))
		r.Interactive = false
		return r.Run(ctx)
	}
	defer rl.Close()
	fmt.Fprintf(r.Session.Printer.Err, "georaft: endpoints %s; read mode %s; HELP lists commands, QUIT leaves\n",
		strings.Join(r.Session.Client.Endpoints(), ","), r.Session.Mode)
	for ctx.Err() == nil {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			// Ctrl-C on a half-typed line clears it; at an empty prompt it leaves, as an
			// interrupted program does.
			if strings.TrimSpace(line) == "" {
				return ExitInterrupted
			}
			continue
		}
		if err != nil { // io.EOF: Ctrl-D
			return ExitOK
		}
		_, quit := r.execute(ctx, line)
		if quit {
			return ExitOK
		}
		rl.SetPrompt(r.prompt())
	}
	return ExitOK
}
