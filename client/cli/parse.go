package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/georaft/georaft/internal/typo"

	"github.com/georaft/georaft/readmode"
)

// Verb is a REPL command.
type Verb int

const (
	VerbNone Verb = iota // an empty line or a comment
	VerbSet
	VerbGet
	VerbDel
	VerbStatus
	VerbMode
	VerbHelp
	VerbQuit
)

// Command is one parsed REPL line.
type Command struct {
	Verb  Verb
	Key   string
	Value string
	// Mode is set by MODE (HasMode), and by GET key MODE for that one read.
	Mode    readmode.Mode
	HasMode bool
}

// usage is the one-line hint for each command, shown when a line does not parse.
var usage = map[Verb]string{
	VerbSet:    `SET key value    (quote spaces: SET greeting "hello world")`,
	VerbGet:    `GET key [lease|index|log|stale]`,
	VerbDel:    `DEL key`,
	VerbStatus: `STATUS`,
	VerbMode:   `MODE [lease|index|log|stale]`,
	VerbHelp:   `HELP`,
	VerbQuit:   `QUIT (or EXIT)`,
}

// UsageError is a line that does not parse; Hint is a one-line usage to show.
type UsageError struct {
	Problem string
	Hint    string
}

func (e *UsageError) Error() string {
	if e.Hint == "" {
		return e.Problem
	}
	return e.Problem + "; usage: " + e.Hint
}

var verbs = map[string]Verb{
	"SET": VerbSet, "GET": VerbGet, "DEL": VerbDel, "DELETE": VerbDel, "STATUS": VerbStatus,
	"MODE": VerbMode, "HELP": VerbHelp, "?": VerbHelp, "QUIT": VerbQuit, "EXIT": VerbQuit,
}

// ParseCommand parses one REPL line. Command names are case-insensitive; arguments are
// separated by spaces and may be quoted with "double quotes" (backslash escapes \" \\ \n
// \t) or 'single quotes' (taken literally). A line starting with # is a comment.
func ParseCommand(line string) (Command, error) { return parseCommand(line, nil) }

// parseCommand is ParseCommand for a REPL that also runs the verbs in more (in upper case):
// a typo of one of them is suggested too.
func parseCommand(line string, more []string) (Command, error) {
	words, err := splitWords(line)
	if err != nil {
		return Command{}, &UsageError{Problem: err.Error(), Hint: `quote values like "hello world"`}
	}
	if len(words) == 0 || strings.HasPrefix(words[0], "#") {
		return Command{Verb: VerbNone}, nil
	}
	verb, ok := verbs[strings.ToUpper(words[0])]
	if !ok {
		problem := fmt.Sprintf("unknown command %q", truncate(words[0], 40))
		if s := suggestVerb(words[0], more); s != "" {
			problem += "; did you mean " + s + "?"
		}
		return Command{}, &UsageError{Problem: problem,
			Hint: "SET key value | GET key | DEL key | STATUS | MODE lease|index|log|stale | HELP | QUIT"}
	}
	args := words[1:]
	cmd := Command{Verb: verb}
	wrongArgs := func() error {
		return &UsageError{Problem: fmt.Sprintf("%s takes %s", strings.ToUpper(words[0]), argsWanted(verb)), Hint: usage[verb]}
	}
	switch verb {
	case VerbSet:
		if len(args) != 2 {
			return Command{}, wrongArgs()
		}
		cmd.Key, cmd.Value = args[0], args[1]
	case VerbGet:
		if len(args) < 1 || len(args) > 2 {
			return Command{}, wrongArgs()
		}
		cmd.Key = args[0]
		if len(args) == 2 {
			m, err := readmode.Parse(args[1])
			if err != nil {
				return Command{}, &UsageError{Problem: err.Error(), Hint: usage[verb]}
			}
			cmd.Mode, cmd.HasMode = m, true
		}
	case VerbDel:
		if len(args) != 1 {
			return Command{}, wrongArgs()
		}
		cmd.Key = args[0]
	case VerbMode:
		if len(args) > 1 {
			return Command{}, wrongArgs()
		}
		if len(args) == 1 {
			m, err := readmode.Parse(args[0])
			if err != nil {
				return Command{}, &UsageError{Problem: err.Error(), Hint: usage[verb]}
			}
			cmd.Mode, cmd.HasMode = m, true
		}
	case VerbStatus, VerbHelp, VerbQuit:
		if len(args) != 0 {
			return Command{}, wrongArgs()
		}
	}
	if cmd.Key == "" && (verb == VerbSet || verb == VerbGet || verb == VerbDel) {
		return Command{}, &UsageError{Problem: "the key is empty", Hint: usage[verb]}
	}
	return cmd, nil
}

func argsWanted(v Verb) string {
	switch v {
	case VerbSet:
		return "a key and a value"
	case VerbGet:
		return "a key and optionally a read mode"
	case VerbDel:
		return "one key"
	case VerbMode:
		return "at most one read mode"
	}
	return "no arguments"
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// splitWords splits a line into words, honouring quotes. An empty quoted word ("") is a
// word; a word may mix quoted and bare parts (a"b c"d is one word).
func splitWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	runes := []rune(line)
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		switch {
		case r == '"':
			inWord = true
			closed := false
			for i++; i < len(runes); i++ {
				if runes[i] == '"' {
					closed = true
					break
				}
				if runes[i] == '\\' && i+1 < len(runes) {
					i++
					switch runes[i] {
					case 'n':
						cur.WriteRune('\n')
					case 't':
						cur.WriteRune('\t')
					case 'r':
						cur.WriteRune('\r')
					default:
						cur.WriteRune(runes[i])
					}
					continue
				}
				cur.WriteRune(runes[i])
			}
			if !closed {
				return nil, errors.New("unterminated double quote")
			}
		case r == '\'':
			inWord = true
			closed := false
			for i++; i < len(runes); i++ {
				if runes[i] == '\'' {
					closed = true
					break
				}
				cur.WriteRune(runes[i])
			}
			if !closed {
				return nil, errors.New("unterminated single quote")
			}
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			inWord = true
			cur.WriteRune(r)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// String renders the command as a line that ParseCommand reads back as the same command.
func (c Command) String() string {
	switch c.Verb {
	case VerbSet:
		return "SET " + Quote(c.Key) + " " + Quote(c.Value)
	case VerbGet:
		if c.HasMode {
			return "GET " + Quote(c.Key) + " " + c.Mode.String()
		}
		return "GET " + Quote(c.Key)
	case VerbDel:
		return "DEL " + Quote(c.Key)
	case VerbStatus:
		return "STATUS"
	case VerbMode:
		if c.HasMode {
			return "MODE " + c.Mode.String()
		}
		return "MODE"
	case VerbHelp:
		return "HELP"
	case VerbQuit:
		return "QUIT"
	}
	return ""
}

// Quote returns s as one REPL word: bare when that is unambiguous, else double-quoted with
// backslash escapes.
func Quote(s string) string {
	bare := s != ""
	for _, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '\'' || r == '\\' || r == '#' {
			bare = false
			break
		}
	}
	if bare {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// suggestVerb is the REPL command nearest to word, if a typo away (at most two edits).
func suggestVerb(word string, more []string) string {
	names := append([]string(nil), more...)
	for name := range verbs {
		names = append(names, name)
	}
	sort.Strings(names)
	return typo.Nearest(strings.ToUpper(word), names, 2)
}
