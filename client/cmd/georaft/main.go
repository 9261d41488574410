// Command georaft is the georaft command line: a REPL when run without a command, one-shot
// set/get/del/status/transfer-leader, the benchmark, and the timing tuner. See
// docs/client.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/georaft/georaft/buildinfo"
	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/cli"
	"github.com/georaft/georaft/readmode"
	"github.com/georaft/georaft/tlsutil"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// app holds the global flags and the streams of one invocation.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	endpoints  string
	configs    []string
	timeout    time.Duration
	output     string
	cacert     string
	cert       string
	key        string
	serverName string
	verbose    bool

	// started is set once a command's own code runs: an error before that is a usage
	// error from cobra (unknown command, bad flag).
	started bool
	// code is the exit code a command chose without failing (status with no node up).
	code int
}

// reported marks an error the command has already shown; run only maps it to an exit code.
type reported struct{ err error }

func (r reported) Error() string { return r.err.Error() }
func (r reported) Unwrap() error { return r.err }

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return a.code
	}
	var usage *cli.UsageError
	if !a.started || errors.As(err, &usage) {
		if a.output == "json" || wantsJSON(args) {
			a.printer().Object(map[string]any{"ok": false, "error": err.Error(), "kind": "usage", "exit_code": cli.ExitUsage})
			return cli.ExitUsage
		}
		fmt.Fprintf(stderr, "error: %v\nRun 'georaft --help' for usage.\n", err)
		return cli.ExitUsage
	}
	var done reported
	if !errors.As(err, &done) {
		a.printer().Error("", err)
	}
	return cli.ExitCode(err)
}

const rootLong = `georaft talks to a georaft cluster.

Run without a command it starts a REPL (SET key value, GET key, DEL key, STATUS,
MODE lease|index|log|stale, HELP, QUIT); it also reads commands from a pipe:
  printf 'SET x 1\nGET x\n' | georaft --endpoints 127.0.0.1:7201

Endpoints come from --endpoints, else GEORAFT_ENDPOINTS, else the node config files given
with --config (every peer's client_address). One reachable node is enough: the client
finds the leader, follows redirects and retries within --timeout.

Read modes (GET, get --read, MODE):
  lease  the leader answers alone while it holds its lease: linearizable, one round trip
  index  the leader confirms leadership with a heartbeat quorum first: linearizable
  log    the read goes through the replicated log: linearizable, slowest
  stale  any node answers from its own state: fastest, may be stale

` + cli.ExitCodesHelp

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "georaft",
		Short:         "Command line client of the georaft key-value store",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          a.runREPL,
		Version:       buildinfo.Read().String(),
	}
	root.SetVersionTemplate("georaft {{.Version}}\n")
	root.SuggestionsMinimumDistance = 2
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &cli.UsageError{Problem: err.Error()}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.endpoints, "endpoints", "", "comma-separated client addresses host:port (or ID=host:port); default $"+client.EnvEndpoints)
	pf.StringSliceVar(&a.configs, "config", nil, "georaftd config file(s) to take every peer's client_address from (repeatable, globs allowed)")
	pf.DurationVar(&a.timeout, "timeout", 5*time.Second, "overall deadline of each operation, retries included")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table, json, or raw (values byte for byte, for get)")
	pf.StringVar(&a.cacert, "cacert", "", "CA certificate (PEM) to verify nodes with; enables TLS")
	pf.StringVar(&a.cert, "cert", "", "client certificate (PEM), with --key")
	pf.StringVar(&a.key, "key", "", "client private key (PEM), with --cert")
	pf.StringVar(&a.serverName, "tls-server-name", "", "name expected in the nodes' certificates (default: the dialed host)")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "log retries and redirects to stderr")
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		switch a.output {
		case "table", "text", "json", "raw":
		default:
			return &cli.UsageError{Problem: fmt.Sprintf("--output %q: want table, json or raw", a.output)}
		}
		if a.timeout <= 0 {
			return &cli.UsageError{Problem: fmt.Sprintf("--timeout %v: want a positive duration", a.timeout)}
		}
		return nil
	}
	root.AddCommand(a.setCommand(), a.getCommand(), a.delCommand(), a.statusCommand(), a.healthCommand(),
		a.transferCommand(), a.readLeasesCommand(), a.versionCommand(), a.benchCommand(), a.tuneCommand(),
		a.putCommand(), a.txnCommand(), a.watchCommand(), a.leaseCommand(), a.compactCommand(), a.memberCommand())
	// Cobra's own errors (unknown command, wrong argument count) are usage errors.
	for _, c := range append(root.Commands(), root) {
		if c.Args != nil {
			check, hint := c.Args, c.UseLine()
			if c == root {
				hint = "georaft [command] [flags]; the commands are in georaft --help"
			}
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					problem := err.Error()
					if cmd == root && len(args) > 0 {
						problem = fmt.Sprintf("unknown command %q", args[0])
						if s := root.SuggestionsFor(args[0]); len(s) > 0 {
							problem += "; did you mean " + strings.Join(s, " or ") + "?"
						}
					}
					return &cli.UsageError{Problem: problem, Hint: hint}
				}
				return nil
			}
		}
	}
	return root
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print this client's version, from its build information (the nodes' versions are in status)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.started = true
			info := buildinfo.Read()
			if a.output == "json" {
				a.printer().Object(map[string]any{"ok": true, "op": "version", "version": info.Version, "revision": info.Revision,
					"time": info.Time, "modified": info.Modified, "go_version": info.GoVersion})
				return nil
			}
			fmt.Fprintf(a.stdout, "georaft %s\n", info)
			return nil
		},
	}
}

// wantsJSON reports whether the command line asks for JSON output, read from the arguments
// themselves: a usage error may stop cobra before it has parsed --output.
func wantsJSON(args []string) bool {
	for i, arg := range args {
		switch {
		case arg == "--":
			return false
		case arg == "--output=json" || arg == "-ojson" || arg == "-o=json":
			return true
		case (arg == "--output" || arg == "-o") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

func (a *app) printer() cli.Printer {
	return cli.Printer{Out: a.stdout, Err: a.stderr, JSON: a.output == "json"}
}

func (a *app) logger() *slog.Logger {
	if !a.verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// endpointList resolves where the cluster is: --endpoints, GEORAFT_ENDPOINTS, --config.
func (a *app) endpointList() ([]client.Endpoint, *client.NodeConfigTLS, error) {
	eps, cfg, err := a.resolveEndpoints()
	if err != nil || cfg == nil {
		return eps, nil, err
	}
	tlsCfg := cfg.TLS
	// A relative path in a node config is relative to where the node runs; from elsewhere,
	// try it next to the config file.
	for _, path := range []*string{&tlsCfg.CAFile, &tlsCfg.CertFile, &tlsCfg.KeyFile} {
		if *path != "" && !filepath.IsAbs(*path) {
			if _, err := os.Stat(*path); err != nil {
				if _, err := os.Stat(filepath.Join(cfg.Dir, *path)); err == nil {
					*path = filepath.Join(cfg.Dir, *path)
				}
			}
		}
	}
	return eps, &tlsCfg, nil
}

func (a *app) resolveEndpoints() ([]client.Endpoint, *client.NodeConfigEndpoints, error) {
	list := a.endpoints
	if list == "" {
		list = os.Getenv(client.EnvEndpoints)
	}
	if list != "" {
		eps, err := client.ParseEndpoints(list)
		if err != nil {
			return nil, nil, &cli.UsageError{Problem: err.Error(), Hint: "--endpoints host:port[,host:port...]"}
		}
		if len(eps) > 0 {
			return eps, nil, nil
		}
	}
	if len(a.configs) > 0 {
		var files []string
		for _, pattern := range a.configs {
			matches, err := filepath.Glob(pattern)
			if err != nil || len(matches) == 0 {
				matches = []string{pattern} // let the read name the missing file
			}
			files = append(files, matches...)
		}
		cfg, err := client.EndpointsFromNodeConfigs(files...)
		if err != nil {
			return nil, nil, err
		}
		return cfg.Endpoints, &cfg, nil
	}
	return nil, nil, &cli.UsageError{Problem: "no endpoints",
		Hint: "give --endpoints host:port,..., set " + client.EnvEndpoints + ", or --config configs/local/node1.yaml"}
}

// clientOptions builds the client options for eps, with TLS from the flags or, failing
// that, from the node config's tls section.
func (a *app) clientOptions(eps []client.Endpoint, fromConfig *client.NodeConfigTLS) (client.Options, error) {
	opts := client.OptionsFor(client.Options{RequestTimeout: a.timeout, Logger: a.logger()}, eps)
	ca, cert, key := a.cacert, a.cert, a.key
	if ca == "" && fromConfig != nil && fromConfig.Enabled {
		ca = fromConfig.CAFile
		// Nodes require a client certificate by default; a node's own certificate is one
		// (it carries client auth), so whoever may read the node's key may use the config.
		if cert == "" && key == "" && readable(fromConfig.CertFile) && readable(fromConfig.KeyFile) {
			cert, key = fromConfig.CertFile, fromConfig.KeyFile
		}
	}
	if ca == "" && (cert != "" || key != "") {
		return opts, &cli.UsageError{Problem: "--cert and --key need --cacert"}
	}
	if ca != "" {
		tlsCfg, err := tlsutil.ClientConfig(ca, cert, key, a.serverName)
		if err != nil {
			return opts, err
		}
		opts.TLS = tlsCfg
	}
	return opts, nil
}

// options are the client options of the cluster named by the global flags.
func (a *app) options() (client.Options, error) {
	eps, tlsFromConfig, err := a.endpointList()
	if err != nil {
		return client.Options{}, err
	}
	return a.clientOptions(eps, tlsFromConfig)
}

// newClient connects to the cluster named by the global flags.
func (a *app) newClient() (*client.Client, error) {
	opts, err := a.options()
	if err != nil {
		return nil, err
	}
	return client.New(opts)
}

// interruptible makes Ctrl-C cancel the command's context (exit code 130) instead of
// killing the process, so partial results (bench) are still printed.
func interruptible(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt)
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func historyFile() string {
	if f := os.Getenv("GEORAFT_HISTORY"); f != "" {
		return f
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".georaft_history")
}

func (a *app) runREPL(cmd *cobra.Command, args []string) error {
	a.started = true
	c, err := a.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	session := &cli.Session{Client: c, Printer: a.printer(), Mode: readmode.Lease}
	session.Extra = func(ctx context.Context, words []string) int { return a.replVerb(ctx, words, session.Mode) }
	repl := &cli.REPL{
		Session:        session,
		In:             a.stdin,
		Interactive:    isTerminal(a.stdin) && isTerminal(a.stdout) && a.output != "json",
		HistoryFile:    historyFile(),
		CatchInterrupt: true,
	}
	a.code = repl.Run(cmd.Context())
	return nil
}

// replVerb runs an etcd-style verb typed in the REPL with the one-shot command of the same
// name and the session's global flags. In the REPL a transaction is one line:
// TXN compares THEN ops ELSE ops, with ; between compares and between ops.
func (a *app) replVerb(ctx context.Context, words []string, mode readmode.Mode) int {
	sub := &app{stdin: strings.NewReader(""), stdout: a.stdout, stderr: a.stderr}
	root := sub.rootCommand() // defines the flags, which sets them to their defaults
	sub.endpoints, sub.configs, sub.timeout, sub.output = a.endpoints, a.configs, a.timeout, a.output
	sub.cacert, sub.cert, sub.key, sub.serverName, sub.verbose = a.cacert, a.cert, a.key, a.serverName, a.verbose
	args := append([]string{strings.ToLower(words[0])}, words[1:]...)
	if args[0] == "txn" {
		sub.stdin = strings.NewReader(replTxn(words[1:]))
		args = args[:1]
	}
	if args[0] == "get" && !slices.ContainsFunc(args, func(w string) bool { return strings.HasPrefix(w, "--read") }) {
		args = append(args, "--read", mode.String())
	}
	root.SetArgs(args)
	root.SetIn(sub.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return sub.code
	}
	var done reported
	if !errors.As(err, &done) {
		sub.printer().Error("", err)
	}
	return cli.ExitCode(err)
}

// replTxn turns "compares THEN ops ELSE ops" into etcdctl's transaction text.
func replTxn(words []string) string {
	var sections [3][]string
	sec := 0
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			sections[sec] = append(sections[sec], strings.Join(cur, " "))
			cur = nil
		}
	}
	for _, w := range words {
		switch {
		case strings.EqualFold(w, "THEN") && sec == 0, strings.EqualFold(w, "ELSE") && sec == 1:
			flush()
			sec++
		case w == ";":
			flush()
		case strings.HasSuffix(w, ";"):
			cur = append(cur, quoteWord(strings.TrimSuffix(w, ";")))
			flush()
		default:
			cur = append(cur, quoteWord(w))
		}
	}
	flush()
	return strings.Join(sections[0], "\n") + "\n\n" + strings.Join(sections[1], "\n") + "\n\n" + strings.Join(sections[2], "\n") + "\n"
}

// quoteWord keeps a word with spaces one word for the transaction parser.
func quoteWord(w string) string {
	if strings.ContainsAny(w, " \t") {
		return strconv.Quote(w)
	}
	return w
}

func readable(path string) bool {
	if path == "" {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
