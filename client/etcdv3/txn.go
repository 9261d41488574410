package etcdv3

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// ParseTxn reads a transaction in etcdctl's syntax: compares, one per line, then an empty
// line, the ops run when they all hold, an empty line, and the ops run otherwise.
//
//	mod("/cfg/a") = "7"
//	value("/cfg/a") = "1"
//
//	put /cfg/a 2
//	get /cfg/ --prefix
//
//	del /cfg/a
//
// Compares: value|val|v, mod|m, create|c, version|ver, lease, each ("key") then = != < >
// and a quoted operand. Ops: put KEY VALUE [--lease=ID], get KEY [--prefix|--from-key],
// del KEY [--prefix|--from-key]. Words may be "quoted" (Go escapes).
func ParseTxn(r io.Reader) (*pb.TxnRequest, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	txn := &pb.TxnRequest{}
	section, line := 0, 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			section++
			if section > 2 {
				break
			}
			continue
		}
		var err error
		switch section {
		case 0:
			var c *pb.Compare
			if c, err = parseCompare(text); err == nil {
				txn.Compare = append(txn.Compare, c)
			}
		case 1, 2:
			var op *pb.RequestOp
			if op, err = ParseOp(text); err == nil {
				if section == 1 {
					txn.Success = append(txn.Success, op)
				} else {
					txn.Failure = append(txn.Failure, op)
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("txn line %d: %w", line, err)
		}
	}
	return txn, sc.Err()
}

func parseCompare(text string) (*pb.Compare, error) {
	open := strings.Index(text, "(")
	end := strings.LastIndex(text, ")")
	if open < 0 || end < open {
		return nil, fmt.Errorf("compare %q: want target(\"key\") op \"value\"", text)
	}
	target := strings.ToLower(strings.TrimSpace(text[:open]))
	key, err := unquote(strings.TrimSpace(text[open+1 : end]))
	if err != nil {
		return nil, err
	}
	rest, err := Words(text[end+1:])
	if err != nil {
		return nil, err
	}
	if len(rest) != 2 {
		return nil, fmt.Errorf("compare %q: want an operator and an operand after the key", text)
	}
	c := &pb.Compare{Key: []byte(key)}
	switch rest[0] {
	case "=", "==":
		c.Result = pb.Compare_EQUAL
	case "!=":
		c.Result = pb.Compare_NOT_EQUAL
	case "<":
		c.Result = pb.Compare_LESS
	case ">":
		c.Result = pb.Compare_GREATER
	default:
		return nil, fmt.Errorf("compare operator %q: want = != < >", rest[0])
	}
	operand := rest[1]
	num := func() (int64, error) {
		v, err := strconv.ParseInt(operand, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s compare needs a number, got %q", target, operand)
		}
		return v, nil
	}
	switch target {
	case "value", "val", "v":
		c.Target, c.TargetUnion = pb.Compare_VALUE, &pb.Compare_Value{Value: []byte(operand)}
	case "mod", "m":
		v, err := num()
		if err != nil {
			return nil, err
		}
		c.Target, c.TargetUnion = pb.Compare_MOD, &pb.Compare_ModRevision{ModRevision: v}
	case "create", "c":
		v, err := num()
		if err != nil {
			return nil, err
		}
		c.Target, c.TargetUnion = pb.Compare_CREATE, &pb.Compare_CreateRevision{CreateRevision: v}
	case "version", "ver":
		v, err := num()
		if err != nil {
			return nil, err
		}
		c.Target, c.TargetUnion = pb.Compare_VERSION, &pb.Compare_Version{Version: v}
	case "lease":
		v, err := strconv.ParseInt(operand, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("lease compare needs a hexadecimal lease ID, got %q", operand)
		}
		c.Target, c.TargetUnion = pb.Compare_LEASE, &pb.Compare_Lease{Lease: v}
	default:
		return nil, fmt.Errorf("compare target %q: want value, mod, create, version or lease", target)
	}
	return c, nil
}

// ParseOp parses one transaction op: put KEY VALUE, get KEY, del KEY (with --prefix or
// --from-key for get and del, --lease=HEXID for put).
func ParseOp(text string) (*pb.RequestOp, error) {
	words, err := Words(text)
	if err != nil {
		return nil, err
	}
	var args []string
	var prefix, fromKey bool
	var lease int64
	for _, w := range words[1:] {
		switch {
		case w == "--prefix":
			prefix = true
		case w == "--from-key":
			fromKey = true
		case strings.HasPrefix(w, "--lease="):
			if lease, err = strconv.ParseInt(strings.TrimPrefix(w, "--lease="), 16, 64); err != nil {
				return nil, fmt.Errorf("--lease %q: want a hexadecimal lease ID", w)
			}
		case strings.HasPrefix(w, "--"):
			return nil, fmt.Errorf("unknown option %q", w)
		default:
			args = append(args, w)
		}
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty op")
	}
	switch strings.ToLower(words[0]) {
	case "put":
		if len(args) != 2 {
			return nil, fmt.Errorf("put takes KEY VALUE")
		}
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(args[0]), Value: []byte(args[1]), Lease: lease}}}, nil
	case "get", "range":
		if len(args) != 1 {
			return nil, fmt.Errorf("get takes KEY")
		}
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(args[0]), RangeEnd: RangeEnd(args[0], prefix, fromKey)}}}, nil
	case "del", "delete":
		if len(args) != 1 {
			return nil, fmt.Errorf("del takes KEY")
		}
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(args[0]), RangeEnd: RangeEnd(args[0], prefix, fromKey)}}}, nil
	}
	return nil, fmt.Errorf("unknown op %q: want put, get or del", words[0])
}

// RangeEnd is the range_end for key: every key with the prefix, every key from it, or none.
func RangeEnd(key string, prefix, fromKey bool) []byte {
	switch {
	case fromKey:
		return []byte{0}
	case prefix:
		b := []byte(key)
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] < 0xff {
				b[i]++
				return b[:i+1]
			}
		}
		return []byte{0} // all 0xff: every key from it on
	}
	return nil
}

func unquote(s string) (string, error) {
	if strings.HasPrefix(s, `"`) {
		return strconv.Unquote(s)
	}
	return s, nil
}

// Words splits a line into words; "double quoted" words may hold spaces and Go escapes.
func Words(s string) ([]string, error) {
	var out []string
	s = strings.TrimSpace(s)
	for s != "" {
		if s[0] == '"' {
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			w, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return nil, fmt.Errorf("bad quoted word %s: %v", s[:end+1], err)
			}
			out = append(out, w)
			s = strings.TrimSpace(s[end+1:])
			continue
		}
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		s = strings.TrimSpace(s[i:])
	}
	return out, nil
}
