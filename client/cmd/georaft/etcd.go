package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/georaft/georaft/client/cli"
	"github.com/georaft/georaft/client/etcdv3"
	"github.com/georaft/georaft/readmode"
)

// The etcd-style verbs speak the etcd v3 API every georaft node serves (client/etcdv3): put,
// get with ranges and revisions, txn, watch, lease and compact. Output: key and value lines
// as etcdctl prints them; -o json prints the API's response; -o raw (or --print-value-only)
// prints values alone, -o raw byte for byte with nothing added.

// etcdConn connects to the cluster named by the global flags.
func (a *app) etcdConn() (*etcdv3.Conn, error) {
	opts, err := a.options()
	if err != nil {
		return nil, err
	}
	return etcdv3.Dial(opts.Endpoints, opts.TLS)
}

// etcdShot runs fn with an etcd connection and the operation's deadline.
func (a *app) etcdShot(cmd *cobra.Command, op string, fn func(context.Context, *etcdv3.Conn) error) error {
	a.started = true
	c, err := a.etcdConn()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := interruptible(cmd)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if err := fn(ctx, c); err != nil {
		a.printer().Error(op, err)
		return reported{err}
	}
	return nil
}

func (a *app) printJSON(m proto.Message) {
	b, _ := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	fmt.Fprintln(a.stdout, string(b))
}

// printKVs prints key-value pairs as the output format asks.
func (a *app) printKVs(kvs []*mvccpb.KeyValue, keysOnly, valueOnly bool) {
	for _, kv := range kvs {
		switch {
		case a.output == "raw":
			a.stdout.Write(kv.Value)
		case valueOnly:
			fmt.Fprintf(a.stdout, "%s\n", kv.Value)
		case keysOnly:
			fmt.Fprintf(a.stdout, "%s\n", kv.Key)
		default:
			fmt.Fprintf(a.stdout, "%s\n%s\n", kv.Key, kv.Value)
		}
	}
}

// rangeFlags are get's etcd options.
type rangeFlags struct {
	prefix, fromKey, keysOnly, countOnly, valueOnly bool
	rev, limit                                      int64
	sortBy, order                                   string
}

func (f *rangeFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.prefix, "prefix", false, "every key with KEY as a prefix")
	fl.BoolVar(&f.fromKey, "from-key", false, "every key from KEY on")
	fl.BoolVar(&f.keysOnly, "keys-only", false, "keys only, no values")
	fl.BoolVar(&f.countOnly, "count-only", false, "only how many keys there are")
	fl.BoolVar(&f.valueOnly, "print-value-only", false, "values only, one per line")
	fl.Int64Var(&f.rev, "rev", 0, "read at this revision (0: the newest)")
	fl.Int64Var(&f.limit, "limit", 0, "at most this many keys (0: no limit)")
	fl.StringVar(&f.sortBy, "sort-by", "", "sort by key, create, modify, version or value")
	fl.StringVar(&f.order, "order", "", "sort order: ascend or descend")
}

// etcd reports whether any option needs the etcd API rather than georaft.v1's GET.
func (f *rangeFlags) etcd(output string) bool {
	return f.prefix || f.fromKey || f.keysOnly || f.countOnly || f.valueOnly || f.rev != 0 ||
		f.limit != 0 || f.sortBy != "" || f.order != "" || output == "raw"
}

func (f *rangeFlags) request(key string) (*pb.RangeRequest, error) {
	r := &pb.RangeRequest{Key: []byte(key), RangeEnd: etcdv3.RangeEnd(key, f.prefix, f.fromKey),
		Revision: f.rev, Limit: f.limit, KeysOnly: f.keysOnly, CountOnly: f.countOnly}
	switch strings.ToLower(f.sortBy) {
	case "":
	case "key":
		r.SortTarget = pb.RangeRequest_KEY
	case "create":
		r.SortTarget = pb.RangeRequest_CREATE
	case "modify", "mod":
		r.SortTarget = pb.RangeRequest_MOD
	case "version":
		r.SortTarget = pb.RangeRequest_VERSION
	case "value":
		r.SortTarget = pb.RangeRequest_VALUE
	default:
		return nil, &cli.UsageError{Problem: fmt.Sprintf("--sort-by %q: want key, create, modify, version or value", f.sortBy)}
	}
	switch strings.ToLower(f.order) {
	case "":
		if f.sortBy != "" {
			r.SortOrder = pb.RangeRequest_ASCEND
		}
	case "ascend", "asc":
		r.SortOrder = pb.RangeRequest_ASCEND
	case "descend", "desc":
		r.SortOrder = pb.RangeRequest_DESCEND
	default:
		return nil, &cli.UsageError{Problem: fmt.Sprintf("--order %q: want ascend or descend", f.order)}
	}
	if f.limit < 0 || f.rev < 0 {
		return nil, &cli.UsageError{Problem: "--limit and --rev must not be negative"}
	}
	return r, nil
}

// etcdGet is get with etcd's options; mode picks the consistency (stale is serializable).
func (a *app) etcdGet(cmd *cobra.Command, key string, f *rangeFlags, mode readmode.Mode) error {
	r, err := f.request(key)
	if err != nil {
		return err
	}
	return a.etcdShot(cmd, "get", func(ctx context.Context, c *etcdv3.Conn) error {
		if mode == readmode.Stale {
			r.Serializable = true
		} else {
			ctx = metadata.AppendToOutgoingContext(ctx, "georaft-read-mode", mode.String())
		}
		resp, err := c.Range(ctx, r)
		if err != nil {
			return err
		}
		switch {
		case a.output == "json":
			a.printJSON(resp)
		case f.countOnly:
			fmt.Fprintln(a.stdout, resp.Count)
		default:
			a.printKVs(resp.Kvs, f.keysOnly, f.valueOnly)
		}
		if len(resp.Kvs) == 0 && !f.countOnly && r.RangeEnd == nil {
			a.code = cli.ExitNotFound
		}
		return nil
	})
}

// readValue takes put's value: the argument, @FILE for a file's bytes, or - (or nothing) for
// standard input, byte for byte.
func (a *app) readValue(args []string) ([]byte, error) {
	if len(args) < 2 || args[1] == "-" {
		return io.ReadAll(a.stdin)
	}
	if name, ok := strings.CutPrefix(args[1], "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read the value: %w", err)
		}
		return b, nil
	}
	return []byte(args[1]), nil
}

func parseLeaseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 16, 64)
	if err != nil || id <= 0 {
		return 0, &cli.UsageError{Problem: fmt.Sprintf("lease ID %q: want a hexadecimal ID as lease grant prints it", s)}
	}
	return id, nil
}

func (a *app) putCommand() *cobra.Command {
	var lease string
	var prevKV, ignoreValue, ignoreLease bool
	cmd := &cobra.Command{
		Use:   "put KEY [VALUE | @FILE | -]",
		Short: "Store a value through the etcd API (VALUE, a file's bytes with @FILE, or standard input)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := &pb.PutRequest{Key: []byte(args[0]), PrevKv: prevKV, IgnoreValue: ignoreValue, IgnoreLease: ignoreLease}
			if lease != "" {
				id, err := parseLeaseID(lease)
				if err != nil {
					return err
				}
				r.Lease = id
			}
			if !ignoreValue {
				v, err := a.readValue(args)
				if err != nil {
					a.started = true
					return err
				}
				r.Value = v
			}
			return a.etcdShot(cmd, "put", func(ctx context.Context, c *etcdv3.Conn) error {
				resp, err := c.Put(ctx, r)
				if err != nil {
					return err
				}
				if a.output == "json" {
					a.printJSON(resp)
					return nil
				}
				fmt.Fprintln(a.stdout, "OK")
				if resp.PrevKv != nil {
					a.printKVs([]*mvccpb.KeyValue{resp.PrevKv}, false, false)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&lease, "lease", "", "attach the key to this lease (hexadecimal ID)")
	cmd.Flags().BoolVar(&prevKV, "prev-kv", false, "print the previous key-value pair")
	cmd.Flags().BoolVar(&ignoreValue, "ignore-value", false, "keep the current value (change only the lease)")
	cmd.Flags().BoolVar(&ignoreLease, "ignore-lease", false, "keep the current lease")
	return cmd
}

func (a *app) txnCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "txn",
		Short: "Run a transaction read from standard input, in etcdctl's syntax",
		Long: `Reads compares, an empty line, the ops to run when every compare holds, an empty
line, and the ops to run otherwise:

  value("/cfg/a") = "1"
  mod("/cfg/b") < "10"

  put /cfg/a 2
  get /cfg/ --prefix

  get /cfg/a

Compares: value, mod, create, version, lease; operators = != < >. Ops: put KEY VALUE
[--lease=ID], get KEY [--prefix|--from-key], del KEY [--prefix|--from-key]. Prints SUCCESS
or FAILURE, then each op's result. Exit code 1 on FAILURE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			txn, err := etcdv3.ParseTxn(a.stdin)
			if err != nil {
				return &cli.UsageError{Problem: err.Error(), Hint: "georaft txn --help"}
			}
			return a.etcdShot(cmd, "txn", func(ctx context.Context, c *etcdv3.Conn) error {
				resp, err := c.Txn(ctx, txn)
				if err != nil {
					return err
				}
				if a.output == "json" {
					a.printJSON(resp)
				} else {
					a.printTxn(resp)
				}
				if !resp.Succeeded {
					a.code = cli.ExitNotFound
				}
				return nil
			})
		},
	}
}

func (a *app) printTxn(resp *pb.TxnResponse) {
	if resp.Succeeded {
		fmt.Fprintln(a.stdout, "SUCCESS")
	} else {
		fmt.Fprintln(a.stdout, "FAILURE")
	}
	for _, r := range resp.Responses {
		fmt.Fprintln(a.stdout)
		switch v := r.Response.(type) {
		case *pb.ResponseOp_ResponsePut:
			fmt.Fprintln(a.stdout, "OK")
		case *pb.ResponseOp_ResponseRange:
			a.printKVs(v.ResponseRange.Kvs, false, false)
		case *pb.ResponseOp_ResponseDeleteRange:
			fmt.Fprintln(a.stdout, v.ResponseDeleteRange.Deleted)
		case *pb.ResponseOp_ResponseTxn:
			a.printTxn(v.ResponseTxn)
		}
	}
}

func (a *app) watchCommand() *cobra.Command {
	var prefix, fromKey, prevKV bool
	var rev int64
	var count int
	cmd := &cobra.Command{
		Use:   "watch KEY",
		Short: "Print changes to a key (or a prefix) as they happen, from a revision on",
		Long: `Prints each event as etcdctl does (PUT or DELETE, the key, the value), or one JSON
response per line with -o json, until interrupted or --count events were printed. With --rev
the history from that revision is replayed first; a watch interrupted at revision R
continues without a gap with --rev R+1, on any node.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.started = true
			c, err := a.etcdConn()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := interruptible(cmd)
			defer stop()
			err = a.watch(ctx, c, &pb.WatchCreateRequest{Key: []byte(args[0]), RangeEnd: etcdv3.RangeEnd(args[0], prefix, fromKey),
				StartRevision: rev, PrevKv: prevKV}, count)
			if err != nil && ctx.Err() == nil {
				a.printer().Error("watch", err)
				return reported{err}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&prefix, "prefix", false, "every key with KEY as a prefix")
	cmd.Flags().BoolVar(&fromKey, "from-key", false, "every key from KEY on")
	cmd.Flags().BoolVar(&prevKV, "prev-kv", false, "print each key's previous value too")
	cmd.Flags().Int64Var(&rev, "rev", 0, "start at this revision, replaying the history from it")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many events (0: until interrupted)")
	return cmd
}

// watch streams events, resuming on another endpoint from the next revision when the stream
// breaks.
func (a *app) watch(ctx context.Context, c *etcdv3.Conn, req *pb.WatchCreateRequest, count int) error {
	printed := 0
	var lastErr error
	for attempt := 0; ; attempt++ {
		cc, err := c.Current()
		if err != nil {
			return err
		}
		stream, err := pb.NewWatchClient(cc).Watch(ctx)
		if err == nil {
			err = stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}})
		}
		for err == nil {
			var resp *pb.WatchResponse
			if resp, err = stream.Recv(); err != nil {
				break
			}
			attempt = 0
			if resp.CompactRevision != 0 {
				return fmt.Errorf("watch: revision %d is compacted (the oldest left is %d)", req.StartRevision, resp.CompactRevision)
			}
			if resp.Canceled {
				return fmt.Errorf("watch canceled: %s", resp.CancelReason)
			}
			for _, ev := range resp.Events {
				if a.output == "json" {
					b, _ := protojson.Marshal(ev)
					fmt.Fprintln(a.stdout, string(b))
				} else {
					fmt.Fprintf(a.stdout, "%s\n%s\n", ev.Type, ev.Kv.Key)
					if ev.PrevKv != nil {
						fmt.Fprintf(a.stdout, "%s\n", ev.PrevKv.Value)
					}
					if ev.Type == mvccpb.PUT {
						fmt.Fprintf(a.stdout, "%s\n", ev.Kv.Value)
					}
				}
				// Resume after this revision if the stream breaks.
				req.StartRevision = ev.Kv.ModRevision + 1
				printed++
				if count > 0 && printed >= count {
					return nil
				}
			}
			if len(resp.Events) == 0 && resp.Header != nil && req.StartRevision == 0 {
				req.StartRevision = resp.Header.Revision + 1
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lastErr = err
		if attempt > 10 {
			return lastErr
		}
		c.Next()
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (a *app) leaseCommand() *cobra.Command {
	lease := &cobra.Command{Use: "lease", Short: "Grant, revoke, keep alive and inspect leases"}
	var once, keys bool
	grant := &cobra.Command{
		Use: "grant TTL", Short: "Grant a lease of TTL seconds and print its ID", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ttl, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || ttl <= 0 {
				return &cli.UsageError{Problem: fmt.Sprintf("TTL %q: want a positive number of seconds", args[0])}
			}
			return a.etcdShot(cmd, "lease grant", func(ctx context.Context, c *etcdv3.Conn) error {
				resp, err := c.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: ttl})
				if err != nil {
					return err
				}
				if a.output == "json" {
					a.printJSON(resp)
					return nil
				}
				fmt.Fprintf(a.stdout, "lease %x granted with TTL(%ds)\n", resp.ID, resp.TTL)
				return nil
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a lease and delete its keys", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseLeaseID(args[0])
			if err != nil {
				return err
			}
			return a.etcdShot(cmd, "lease revoke", func(ctx context.Context, c *etcdv3.Conn) error {
				if _, err := c.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id}); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "lease %x revoked\n", id)
				return nil
			})
		},
	}
	keepAlive := &cobra.Command{
		Use: "keep-alive ID", Short: "Keep a lease alive (until interrupted, or --once)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseLeaseID(args[0])
			if err != nil {
				return err
			}
			a.started = true
			c, err := a.etcdConn()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := interruptible(cmd)
			defer stop()
			for {
				octx, cancel := context.WithTimeout(ctx, a.timeout)
				resp, err := c.KeepAliveOnce(octx, id)
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					a.printer().Error("lease keep-alive", err)
					return reported{err}
				}
				if resp.TTL <= 0 {
					err := fmt.Errorf("lease %x expired or was revoked", id)
					a.printer().Error("lease keep-alive", err)
					a.code = cli.ExitNotFound
					return nil
				}
				fmt.Fprintf(a.stdout, "lease %x keepalived with TTL(%d)\n", id, resp.TTL)
				if once {
					return nil
				}
				select {
				case <-time.After(time.Duration(resp.TTL) * time.Second / 3):
				case <-ctx.Done():
					return nil
				}
			}
		},
	}
	keepAlive.Flags().BoolVar(&once, "once", false, "renew once and exit")
	ttl := &cobra.Command{
		Use: "timetolive ID", Short: "Print a lease's time left (and its keys with --keys)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseLeaseID(args[0])
			if err != nil {
				return err
			}
			return a.etcdShot(cmd, "lease timetolive", func(ctx context.Context, c *etcdv3.Conn) error {
				resp, err := c.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id, Keys: keys})
				if err != nil {
					return err
				}
				if a.output == "json" {
					a.printJSON(resp)
					return nil
				}
				if resp.TTL == -1 {
					fmt.Fprintf(a.stdout, "lease %x already expired\n", id)
					a.code = cli.ExitNotFound
					return nil
				}
				fmt.Fprintf(a.stdout, "lease %x granted with TTL(%ds), remaining(%ds)", id, resp.GrantedTTL, resp.TTL)
				if keys {
					names := make([]string, len(resp.Keys))
					for i, k := range resp.Keys {
						names[i] = string(k)
					}
					fmt.Fprintf(a.stdout, ", attached keys(%s)", strings.Join(names, ", "))
				}
				fmt.Fprintln(a.stdout)
				return nil
			})
		},
	}
	ttl.Flags().BoolVar(&keys, "keys", false, "list the keys attached to the lease")
	lease.AddCommand(grant, revoke, keepAlive, ttl)
	return lease
}

func (a *app) compactCommand() *cobra.Command {
	var physical bool
	cmd := &cobra.Command{
		Use:   "compact REVISION",
		Short: "Discard the history below a revision",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rev, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || rev <= 0 {
				return &cli.UsageError{Problem: fmt.Sprintf("revision %q: want a positive number", args[0])}
			}
			return a.etcdShot(cmd, "compact", func(ctx context.Context, c *etcdv3.Conn) error {
				if _, err := c.Compact(ctx, &pb.CompactionRequest{Revision: rev, Physical: physical}); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "compacted revision %d\n", rev)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&physical, "physical", false, "return only once the old versions are removed from disk")
	return cmd
}
