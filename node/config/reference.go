package config

import (
	"fmt"
	"strings"
	"time"
)

// ReferenceTable renders every key as a Markdown table row: key, environment variable, flag,
// default, meaning. The README's configuration reference is this table; a test keeps the two
// identical.
func ReferenceTable() string {
	var b strings.Builder
	b.WriteString("| key | environment | flag | default | meaning |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	d := Defaults()
	row := func(key, env, flag, def, usage string) {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s |\n", key, env, flag, def, usage)
	}
	for _, f := range fields {
		flag := "—"
		if f.flag != "" {
			flag = "`--" + f.flag + "`"
		}
		row(f.key, envName(f.key), flag, defaultText(f.ref(&d)), strings.ReplaceAll(f.usage, "|", "\\|"))
		if f.key == "listen.metrics" {
			row(peersKey, envName(peersKey), "—", "—",
				"every member, this node included; env form `ID=REGION@PEER_ADDR/CLIENT_ADDR,...`")
			for _, pf := range peerFields {
				fmt.Fprintf(&b, "| `%s[].%s` | — | — | — | %s |\n", peersKey, pf.key, peerFieldMeaning[pf.key])
			}
		}
	}
	fmt.Fprintf(&b, "| (file) | `%s` | `--%s` | — | the YAML file to read |\n", configEnv, configFlag)
	return b.String()
}

func defaultText(ref any) string {
	var s string
	switch v := ref.(type) {
	case *string:
		s = *v
	case *uint64:
		s = fmt.Sprint(*v)
	case *int:
		s = fmt.Sprint(*v)
	case *int64:
		s = fmt.Sprint(*v)
	case *float64:
		s = fmt.Sprint(*v)
	case *bool:
		s = fmt.Sprint(*v)
	case *time.Duration:
		s = v.String()
	default:
		s = fmt.Sprint(v)
	}
	if s == "" || s == "0" {
		return "—"
	}
	return "`" + s + "`"
}

var peerFieldMeaning = map[string]string{
	"id":             "the member's node id, never 0",
	"region":         "where it runs, for operators and the benchmark",
	"peer_address":   "where this node dials it (a proxy address in the geo lab)",
	"client_address": "what NotLeader redirects name",
}
