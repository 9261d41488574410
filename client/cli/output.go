package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/bench"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
)

// Printer writes command results as text for people or as JSON (one object per result,
// one line each) for programs. Text results go to Out and remarks to Err, so that
// `v=$(georaft get k)` captures the value alone.
type Printer struct {
	Out  io.Writer
	Err  io.Writer
	JSON bool
}

// Object prints v as one line of JSON (a command's result under --output json).
func (p Printer) Object(v any) { p.json(v) }

func (p Printer) json(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		// Every value passed here is made of plain fields; this cannot happen, but if it
		// does the user still gets a line.
		fmt.Fprintf(p.Out, `{"ok":false,"error":%q}`+"\n", err.Error())
		return
	}
	fmt.Fprintf(p.Out, "%s\n", data)
}

type jsonSession struct {
	ClientID uint64 `json:"client_id"`
	Sequence uint64 `json:"sequence"`
}

type jsonWrite struct {
	OK       bool        `json:"ok"`
	Op       string      `json:"op"`
	Key      string      `json:"key"`
	Index    uint64      `json:"index"`
	Existed  *bool       `json:"existed,omitempty"`
	NodeID   uint64      `json:"node_id"`
	Term     uint64      `json:"term"`
	Endpoint string      `json:"endpoint"`
	Attempts int         `json:"attempts"`
	Session  jsonSession `json:"session"`
}

// Set prints the result of a SET.
func (p Printer) Set(key string, res client.WriteResult) {
	if p.JSON {
		p.json(jsonWrite{OK: true, Op: "set", Key: key, Index: res.Index, NodeID: res.NodeID, Term: res.Term,
			Endpoint: res.Endpoint, Attempts: res.Attempts,
			Session: jsonSession{ClientID: res.Session.ClientID, Sequence: res.Session.Sequence}})
		return
	}
	fmt.Fprintln(p.Out, "OK")
}

// Del prints the result of a DEL.
func (p Printer) Del(key string, res client.WriteResult) {
	if p.JSON {
		existed := res.Existed
		p.json(jsonWrite{OK: true, Op: "delete", Key: key, Index: res.Index, Existed: &existed, NodeID: res.NodeID,
			Term: res.Term, Endpoint: res.Endpoint, Attempts: res.Attempts,
			Session: jsonSession{ClientID: res.Session.ClientID, Sequence: res.Session.Sequence}})
		return
	}
	if res.Existed {
		fmt.Fprintln(p.Out, "OK")
	} else {
		fmt.Fprintln(p.Out, "OK (the key did not exist)")
	}
}

type jsonGet struct {
	OK           bool    `json:"ok"`
	Op           string  `json:"op"`
	Key          string  `json:"key"`
	Found        bool    `json:"found"`
	Value        *string `json:"value,omitempty"`
	ValueBase64  []byte  `json:"value_base64,omitempty"`
	Requested    string  `json:"requested_mode"`
	Served       string  `json:"served_mode"`
	NodeID       uint64  `json:"node_id"`
	Term         uint64  `json:"term"`
	AppliedIndex uint64  `json:"applied_index"`
	Endpoint     string  `json:"endpoint"`
	Attempts     int     `json:"attempts"`
	// StalenessBoundMs, for a stale read: the answer is at most this old.
	StalenessBoundMs float64 `json:"staleness_bound_ms,omitempty"`
}

// Get prints the result of a GET: the value on Out; on Err, a note when the read was
// served in another mode than asked, or may be stale.
func (p Printer) Get(key string, res client.GetResult) {
	if p.JSON {
		out := jsonGet{OK: true, Op: "get", Key: key, Found: res.Found, Requested: res.Requested.String(),
			Served: res.Served.String(), NodeID: res.NodeID, Term: res.Term, AppliedIndex: res.AppliedIndex,
			Endpoint: res.Endpoint, Attempts: res.Attempts, StalenessBoundMs: toMs(int64(res.StalenessBound))}
		if res.Found {
			if utf8.Valid(res.Value) {
				v := string(res.Value)
				out.Value = &v
			} else {
				out.ValueBase64 = res.Value
			}
		}
		p.json(out)
		return
	}
	if res.Found {
		fmt.Fprintln(p.Out, DisplayValue(res.Value))
	} else {
		fmt.Fprintln(p.Err, "(not found)")
	}
	switch {
	case res.Served == readmode.Stale:
		fmt.Fprintf(p.Err, "(stale read from node %d at applied index %d: at most %s old)\n", res.NodeID, res.AppliedIndex, fmtMs(toMs(int64(res.StalenessBound))))
	case res.Served != res.Requested:
		fmt.Fprintf(p.Err, "(asked for %s %s read, served as %s %s read by node %d: still linearizable)\n",
			article(res.Requested.String()), res.Requested, article(res.Served.String()), res.Served, res.NodeID)
	}
}

// article is "an" before a mode that starts with a vowel (index), else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// DisplayValue shows a value as it is when it is printable text, else Go-quoted so that
// control bytes cannot mess up the terminal.
func DisplayValue(v []byte) string {
	s := string(v)
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// Mode prints the read mode now in force.
func (p Printer) Mode(m readmode.Mode) {
	if p.JSON {
		p.json(map[string]any{"ok": true, "op": "mode", "mode": m.String()})
		return
	}
	note := ""
	if m == readmode.Stale {
		note = " (any node answers from its own state: reads may be stale)"
	}
	fmt.Fprintf(p.Out, "read mode: %s%s\n", m, note)
}

// Transfer prints the result of a leadership transfer.
func (p Printer) Transfer(res client.TransferResult) {
	if p.JSON {
		p.json(map[string]any{"ok": true, "op": "transfer-leader", "leader_id": res.LeaderID, "term": res.Term})
		return
	}
	fmt.Fprintf(p.Out, "OK: node %d leads in term %d\n", res.LeaderID, res.Term)
}

// ReadLeases prints the holders after `read-leases set`.
func (p Printer) ReadLeases(res client.ReadLeasesResult) {
	holders := res.Holders
	if holders == nil {
		holders = []uint64{}
	}
	if p.JSON {
		p.json(map[string]any{"ok": true, "op": "read-leases-set", "holders": holders, "index": res.Index})
		return
	}
	if len(res.Holders) == 0 {
		fmt.Fprintf(p.Out, "OK: no member holds a read lease (change at index %d)\n", res.Index)
		return
	}
	fmt.Fprintf(p.Out, "OK: read leases held by nodes %v (change at index %d)\n", res.Holders, res.Index)
}

type jsonError struct {
	OK       bool   `json:"ok"`
	Op       string `json:"op,omitempty"`
	Error    string `json:"error"`
	Kind     string `json:"kind"`
	ExitCode int    `json:"exit_code"`
	Field    string `json:"field,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Error reports a failed command: as JSON on Out, or as "error: ..." on Err.
func (p Printer) Error(op string, err error) {
	if p.JSON {
		out := jsonError{Op: op, Error: err.Error(), Kind: ErrorKind(err), ExitCode: ExitCode(err)}
		var inv *client.InvalidArgumentError
		var un *client.UnavailableError
		if errors.As(err, &inv) {
			out.Field = inv.Field
		}
		if errors.As(err, &un) {
			out.Reason = un.Reason
		}
		p.json(out)
		return
	}
	if err == ErrNotFound {
		return // Get already said "(not found)".
	}
	fmt.Fprintf(p.Err, "error: %v\n", err)
}

// Help prints the REPL's commands; withEtcd adds the etcd-style verbs a session runs through
// the command line's own commands (Session.Extra).
func (p Printer) Help(withEtcd bool) {
	if p.JSON {
		var cmds []string
		for _, v := range []Verb{VerbSet, VerbGet, VerbDel, VerbStatus, VerbMode, VerbHelp, VerbQuit} {
			cmds = append(cmds, usage[v])
		}
		if withEtcd {
			cmds = append(cmds, etcdUsage...)
		}
		p.json(map[string]any{"ok": true, "op": "help", "commands": cmds})
		return
	}
	fmt.Fprint(p.Out, ReplHelp)
	if withEtcd {
		fmt.Fprint(p.Out, "etcd-style commands (as the georaft command line's, one line each):\n")
		for _, u := range etcdUsage {
			fmt.Fprintf(p.Out, "  %s\n", u)
		}
	}
}

// etcdUsage is one line per etcd-style REPL verb (repl.go's etcdVerbs), with the form the
// REPL takes.
var etcdUsage = []string{
	"GET key [--prefix | --from-key] [--keys-only] [--count-only] [--limit n] [--rev r] [--sort-by f --order o]",
	"PUT key value [--lease id] [--prev-kv] [--ignore-value] [--ignore-lease]",
	"TXN compares THEN ops ELSE ops   e.g. TXN value(\"k\") = \"1\" THEN put k 2 ELSE get k",
	"WATCH key [--prefix | --from-key] [--rev r] [--prev-kv] [--count n]   (Ctrl-C ends it)",
	"LEASE grant ttl | revoke id | keep-alive id [--once] | timetolive id [--keys]",
	"COMPACT revision [--physical]",
	"READ-LEASES set all | none | ID... | REGION...   (which members answer linearizable reads locally)",
	"MEMBER list | add --learner --peer-address host:port | promote id | remove id | replace old new",
}

// ReplHelp lists the REPL commands.
const ReplHelp = `Commands (any case):
  SET key value          store a value; quote spaces: SET greeting "hello world"
  GET key [mode]         read a value (mode: lease, index, log, stale; default: the MODE)
  DEL key                delete a key
  STATUS                 one row per node: role, term, leader, commit, lease, last contact
  MODE [mode]            show or set the read mode of GET:
                           lease  the leader answers alone while it holds its lease (linearizable, fastest)
                           index  the leader confirms with a heartbeat quorum first (linearizable)
                           log    the read goes through the log like a write (linearizable, slowest)
                           stale  any node answers from its own state (fast, may be stale)
  HELP                   this text
  QUIT, EXIT             leave (or Ctrl-D)
`

// nodeRow is one line of the status table and one object of its JSON form.
type nodeRow struct {
	Endpoint         string  `json:"endpoint"`
	Reachable        bool    `json:"reachable"`
	Error            string  `json:"error,omitempty"`
	ID               uint64  `json:"id,omitempty"`
	Region           string  `json:"region,omitempty"`
	Address          string  `json:"address,omitempty"`
	ClusterID        string  `json:"cluster_id,omitempty"`
	Role             string  `json:"role,omitempty"`
	Term             uint64  `json:"term,omitempty"`
	LeaderID         uint64  `json:"leader_id,omitempty"`
	CommitIndex      uint64  `json:"commit_index,omitempty"`
	AppliedIndex     uint64  `json:"applied_index,omitempty"`
	LastIndex        uint64  `json:"last_index,omitempty"`
	SnapshotIndex    uint64  `json:"snapshot_index,omitempty"`
	Keys             uint64  `json:"keys,omitempty"`
	LeaseState       string  `json:"lease_state,omitempty"`
	LeaseRemainingMs float64 `json:"lease_remaining_ms,omitempty"`
	LastContactMs    float64 `json:"last_contact_age_ms,omitempty"`
	// A read-lease holder's own lease, and the holders its membership names.
	ReadLeaseState       string   `json:"read_lease_state,omitempty"`
	ReadLeaseRemainingMs float64  `json:"read_lease_remaining_ms,omitempty"`
	ReadLeaseHolders     []uint64 `json:"read_lease_holders,omitempty"`
	Version              string   `json:"version,omitempty"`
	RTTMs                float64  `json:"status_rtt_ms"`
	// Learner: the node receives the log but does not vote; LagEntries is how far behind the
	// leader it is, as the leader reports it.
	Learner    bool   `json:"learner,omitempty"`
	LagEntries uint64 `json:"lag_entries,omitempty"`
}

func roleName(r georaftv1.Role) string {
	switch r {
	case georaftv1.Role_ROLE_FOLLOWER:
		return "follower"
	case georaftv1.Role_ROLE_PRE_CANDIDATE:
		return "pre-candidate"
	case georaftv1.Role_ROLE_CANDIDATE:
		return "candidate"
	case georaftv1.Role_ROLE_LEADER:
		return "leader"
	}
	return "unknown"
}

func leaseName(s georaftv1.LeaseState) string {
	switch s {
	case georaftv1.LeaseState_LEASE_STATE_NONE:
		return "none"
	case georaftv1.LeaseState_LEASE_STATE_WAITING:
		return "waiting"
	case georaftv1.LeaseState_LEASE_STATE_HELD:
		return "held"
	case georaftv1.LeaseState_LEASE_STATE_RELINQUISHED:
		return "relinquished"
	}
	return ""
}

func toMs(nanos int64) float64 { return float64(nanos) / 1e6 }

func rowsOf(nodes []client.NodeStatus, ids map[string]uint64) []nodeRow {
	var rows []nodeRow
	for _, n := range nodes {
		row := nodeRow{Endpoint: n.Endpoint, RTTMs: toMs(n.RTT.Nanoseconds()), ID: ids[n.Endpoint]}
		if n.Err != nil || n.Status == nil {
			row.Error = shortError(n.Err)
			rows = append(rows, row)
			continue
		}
		st := n.Status
		row.Reachable = true
		row.ID, row.Region, row.Address, row.ClusterID = st.GetId(), st.GetRegion(), st.GetAddress(), st.GetClusterId()
		row.Role, row.Term, row.LeaderID = roleName(st.GetRole()), st.GetTerm(), st.GetLeaderId()
		row.CommitIndex, row.AppliedIndex, row.LastIndex = st.GetCommitIndex(), st.GetAppliedIndex(), st.GetLastIndex()
		row.SnapshotIndex, row.Keys, row.Version = st.GetSnapshotIndex(), st.GetKeys(), st.GetVersion()
		row.LeaseState = leaseName(st.GetLeaseState())
		row.LeaseRemainingMs = toMs(st.GetLeaseRemainingNanos())
		row.ReadLeaseState = leaseName(st.GetReadLeaseState())
		row.ReadLeaseRemainingMs = toMs(st.GetReadLeaseRemainingNanos())
		row.ReadLeaseHolders = st.GetReadLeaseHolders()
		row.LastContactMs = toMs(st.GetLastContactAgeNanos())
		row.Learner = st.GetLearner()
		rows = append(rows, row)
	}
	// A learner's lag is what the leader knows of it.
	for _, n := range nodes {
		if n.Status.GetRole() != georaftv1.Role_ROLE_LEADER {
			continue
		}
		for _, p := range n.Status.GetPeers() {
			for i := range rows {
				if rows[i].ID == p.GetId() && rows[i].Learner {
					rows[i].LagEntries = p.GetLag()
				}
			}
		}
	}
	return rows
}

// roleText is a row's role as the table shows it: a learner with its lag.
func roleText(r nodeRow) string {
	if r.Learner {
		return fmt.Sprintf("learner (%d behind)", r.LagEntries)
	}
	return r.Role
}

// shortError keeps the gist of a connection error for a table cell.
func shortError(err error) string {
	if err == nil {
		return "no answer"
	}
	if errors.Is(err, context.DeadlineExceeded) || status.Code(errors.Unwrap(err)) == codes.DeadlineExceeded {
		return "no answer (timed out)"
	}
	msg := client.DescribeRPCError(errors.Unwrap(err))
	// Keep the last clause: "connect: connection refused", "no such host".
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = msg[i+2:]
	}
	return truncate(msg, 60)
}

// Status prints one row per endpoint; ids names the node behind endpoints that did not
// answer, when known.
func (p Printer) Status(nodes []client.NodeStatus, ids map[string]uint64) {
	rows := rowsOf(nodes, ids)
	sum := client.Summarize(nodes)
	if p.JSON {
		p.json(map[string]any{"ok": sum.Healthy(), "op": "status", "nodes": rows, "leader_id": sum.LeaderID,
			"term": sum.Term, "reachable": sum.Reachable, "total": sum.Asked, "members": sum.Members,
			"quorum": sum.Quorum, "problem": sum.Problem()})
		return
	}
	table := [][]string{{"id", "region", "address", "role", "term", "leader", "commit", "applied", "lease left", "last contact", "version"}}
	for _, r := range rows {
		id := "?"
		if r.ID != 0 {
			id = strconv.FormatUint(r.ID, 10)
		}
		if !r.Reachable {
			table = append(table, []string{id, "", r.Endpoint, "unreachable", "", "", "", "", "", r.Error, ""})
			continue
		}
		lease := "-"
		switch r.LeaseState {
		case "held":
			lease = fmtMs(r.LeaseRemainingMs)
		case "waiting", "relinquished":
			lease = r.LeaseState
		}
		if r.ReadLeaseState == "held" {
			lease = "read " + fmtMs(r.ReadLeaseRemainingMs)
		}
		leader := "-"
		if r.LeaderID != 0 {
			leader = strconv.FormatUint(r.LeaderID, 10)
		}
		table = append(table, []string{id, r.Region, r.Endpoint, roleText(r), strconv.FormatUint(r.Term, 10), leader,
			strconv.FormatUint(r.CommitIndex, 10), strconv.FormatUint(r.AppliedIndex, 10), lease, fmtAge(r), r.Version})
	}
	io.WriteString(p.Out, bench.Columns(table, map[int]bool{0: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true}))
	for _, r := range rows {
		if r.Reachable && r.ID != 0 && r.ID == sum.LeaderID {
			if len(r.ReadLeaseHolders) == 0 {
				fmt.Fprintln(p.Out, "read leases: none (only the leader answers lease reads)")
			} else {
				fmt.Fprintf(p.Out, "read leases: held by nodes %v\n", r.ReadLeaseHolders)
			}
		}
	}
	if problem := sum.Problem(); problem != "" {
		fmt.Fprintf(p.Out, "%d of %d nodes answered; UNHEALTHY: %s\n", sum.Reachable, sum.Asked, problem)
		return
	}
	fmt.Fprintf(p.Out, "%d of %d nodes answered; leader: node %d, term %d\n", sum.Reachable, sum.Asked, sum.LeaderID, sum.Term)
}

// Health prints one line on the cluster's health: whether a leader is known and a quorum
// of nodes answers, and if not, why.
func (p Printer) Health(nodes []client.NodeStatus) {
	sum := client.Summarize(nodes)
	if p.JSON {
		p.json(map[string]any{"ok": sum.Healthy(), "op": "health", "healthy": sum.Healthy(), "problem": sum.Problem(),
			"leader_id": sum.LeaderID, "term": sum.Term, "reachable": sum.Reachable, "members": sum.Members, "quorum": sum.Quorum})
		return
	}
	if problem := sum.Problem(); problem != "" {
		fmt.Fprintf(p.Out, "unhealthy: %s\n", problem)
		return
	}
	fmt.Fprintf(p.Out, "healthy: leader node %d, term %d; %d of %d nodes answered\n", sum.LeaderID, sum.Term, sum.Reachable, sum.Members)
}

func fmtAge(r nodeRow) string {
	if r.Role == "leader" {
		return "-"
	}
	if r.LastContactMs <= 0 {
		return "never"
	}
	return fmtMs(r.LastContactMs) + " ago"
}

func fmtMs(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}
