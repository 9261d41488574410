package chaos

import (
	"context"
	"fmt"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/client/etcdv3"
	"github.com/georaft/georaft/history"
	"github.com/georaft/georaft/readmode"
)

// The workload's etcd API operations: range reads of a whole key group and compare-and-swap
// transactions, recorded in the same history as the georaft.v1 operations and checked with
// the group model (history.Group).

// keysPerGroup is how many keys a range read covers.
const keysPerGroup = 5

func groupKey(i int) string { return fmt.Sprintf("g%d/k%03d", i/keysPerGroup, i) }

// seen is what a client last saw of each key, for the expectations of its CAS.
type seen struct {
	found bool
	value string
}

func (w *Workload) rangeGroup(ctx context.Context, clientID int, conn *etcdv3.Conn, group string, mode readmode.Mode, last map[string]seen) {
	call := w.rec.Begin(history.Op{ClientID: clientID, Kind: history.Range, Key: group, Mode: mode})
	start := w.clock.Now()
	rctx := metadata.AppendToOutgoingContext(ctx, "georaft-read-mode", mode.String())
	resp, err := conn.Range(rctx, &pb.RangeRequest{Key: []byte(group), RangeEnd: etcdv3.RangeEnd(group, true, false)})
	if err != nil {
		call.Unknown(err)
		w.count("range " + mode.String() + " error")
		return
	}
	values := map[string]string{}
	for _, kv := range resp.Kvs {
		values[string(kv.Key)] = string(kv.Value)
	}
	for _, k := range w.keys {
		if strings.HasPrefix(k, group) {
			v, ok := values[k]
			last[k] = seen{ok, v}
		}
	}
	call.Ranged(values, mode)
	call.Annotate(fmt.Sprintf("n%d t%d r%d", resp.Header.GetMemberId(), resp.Header.GetRaftTerm(), resp.Header.GetRevision()))
	w.count("range " + mode.String() + " ok")
	w.note(Served{Kind: history.Range, Mode: mode, Asked: mode, Node: resp.Header.GetMemberId(), Term: resp.Header.GetRaftTerm(), Call: start, Return: w.clock.Now()})
}

// cas swaps key from what the client last saw of it (or from absent) to a fresh value.
func (w *Workload) cas(ctx context.Context, clientID int, conn *etcdv3.Conn, key, value string, expect seen) {
	call := w.rec.Begin(history.Op{ClientID: clientID, Kind: history.CAS, Key: key, Value: value, Expect: expect.value, ExpectFound: expect.found})
	cmp := &pb.Compare{Key: []byte(key), Result: pb.Compare_EQUAL}
	if expect.found {
		cmp.Target, cmp.TargetUnion = pb.Compare_VALUE, &pb.Compare_Value{Value: []byte(expect.value)}
	} else {
		cmp.Target, cmp.TargetUnion = pb.Compare_CREATE, &pb.Compare_CreateRevision{CreateRevision: 0}
	}
	resp, err := conn.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{cmp},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}}}}})
	if err != nil {
		if status.Code(err) == codes.InvalidArgument {
			call.Fail(err)
			w.count("cas failed")
			return
		}
		call.Unknown(err)
		w.count("cas unknown")
		return
	}
	call.Swapped(resp.Succeeded)
	call.Annotate(fmt.Sprintf("n%d t%d r%d", resp.Header.GetMemberId(), resp.Header.GetRaftTerm(), resp.Header.GetRevision()))
	if resp.Succeeded {
		w.count("cas swapped")
		w.note(Served{Kind: history.CAS, Node: resp.Header.GetMemberId(), Term: resp.Header.GetRaftTerm(), Return: w.clock.Now()})
	} else {
		w.count("cas not swapped")
	}
}

// isWrite reports whether op changed (or may have changed) its key.
func isWrite(op history.Op) bool {
	switch op.Kind {
	case history.Set, history.Delete:
		return true
	case history.CAS:
		return op.Outcome != history.OK || op.Swapped
	}
	return false
}

// isWrite reports whether a served operation was a write.
func (s Served) isWrite() bool { return s.Kind != history.Get && s.Kind != history.Range }
