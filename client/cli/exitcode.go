// Package cli is what the georaft command line is made of: the REPL and its command
// parser, the output of every command as text or JSON, and the exit codes. The cobra
// wiring lives in client/cmd/georaft.
package cli

import (
	"context"
	"errors"

	"github.com/georaft/georaft/client"
)

// Exit codes of the georaft command (also in `georaft help` and docs/client.md).
const (
	ExitOK          = 0   // success
	ExitNotFound    = 1   // GET of a missing key
	ExitUsage       = 2   // bad command line, flag, or REPL command
	ExitUnavailable = 3   // cluster unavailable: deadline passed, no leader, no node reachable
	ExitRefused     = 4   // the cluster refused the request: invalid argument, wrong cluster, ...
	ExitError       = 5   // anything else: a local file that cannot be read or written, an internal error
	ExitInterrupted = 130 // interrupted by Ctrl-C (128 + SIGINT)
)

// ExitCodesHelp documents the exit codes for `georaft help`.
const ExitCodesHelp = `Exit codes:
  0    success
  1    not found (GET of a missing key)
  2    usage error (unknown command, bad flag or argument)
  3    cluster unavailable (deadline passed, no leader, no node reachable)
  4    refused by the cluster (invalid argument such as an oversized key, wrong cluster, permission)
  5    other error (unreadable file, internal error)
  130  interrupted (Ctrl-C)
In the REPL reading piped input, the exit code is that of the last command that did not
succeed (0 when every command succeeded).`

// ErrNotFound is returned by the get command for a missing key; it maps to exit code 1.
var ErrNotFound = errors.New("not found")

// ExitCode maps an error to the exit code of the command that returned it.
func ExitCode(err error) int {
	var usage *UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrNotFound):
		return ExitNotFound
	case errors.As(err, &usage):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return ExitUnavailable
	case errors.Is(err, client.ErrInvalidArgument), errors.Is(err, client.ErrRefused):
		return ExitRefused
	}
	return ExitError
}

// ErrorKind is a short machine-readable name of an error's class, used in JSON output.
func ErrorKind(err error) string {
	switch ExitCode(err) {
	case ExitOK:
		return ""
	case ExitNotFound:
		return "not_found"
	case ExitUsage:
		return "usage"
	case ExitUnavailable:
		return "unavailable"
	case ExitRefused:
		if errors.Is(err, client.ErrInvalidArgument) {
			return "invalid_argument"
		}
		return "refused"
	case ExitInterrupted:
		return "interrupted"
	}
	return "error"
}
