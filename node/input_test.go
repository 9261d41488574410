package node_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Bad input over raw gRPC (the georaftv1 stubs, no client library): every malformed request
// gets INVALID_ARGUMENT naming its field, binary keys and values work byte for byte, and the
// node stays healthy throughout.

const (
	inputMaxKey   = 300 // room for a key holding every byte value once
	inputMaxValue = 4096
)

func newInputCluster(t *testing.T) (*testCluster, []string) {
	t.Helper()
	tune, metrics := withMetricsListeners(t, 3, func(cfg *config.Config) {
		cfg.Limits.MaxKeyBytes = inputMaxKey
		cfg.Limits.MaxValueBytes = inputMaxValue
	})
	return newTestClusterWith(t, 3, tune, nil), metrics
}

// checkStillHealthy asserts that every node is healthy and the cluster still takes writes.
func (c *testCluster) checkStillHealthy(metrics []string) {
	c.t.Helper()
	for i := range c.servers {
		if code, body, err := httpStatus(c.t, metrics[i], "/healthz"); err != nil || code != http.StatusOK {
			c.t.Fatalf("node %d /healthz after bad input: %d %q (err %v)", i+1, code, body, err)
		}
		if st := c.mustStatus(i); st.Failure != "" {
			c.t.Fatalf("node %d reports a failure after bad input: %s", i+1, st.Failure)
		}
	}
	c.mustSet("still-healthy", "yes")
}

func call(f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f(ctx)
}

func checkInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("%s: got %v, want INVALID_ARGUMENT naming %q", what, err, field)
	}
	if got := badRequestField(err); got != field {
		t.Fatalf("%s: BadRequest names field %q, want %q (%v)", what, got, field, err)
	}
}

// Each malformed request is refused with INVALID_ARGUMENT and the BadRequest field that is
// wrong; none of them reaches the log or hurts the node.
func TestBadRequestsNameTheirField(t *testing.T) {
	c, metrics := newInputCluster(t)
	leader := c.waitLeader(10 * time.Second)
	kvc := c.clients[leader]

	longKey := bytes.Repeat([]byte{'k'}, inputMaxKey+1)
	longValue := bytes.Repeat([]byte{'v'}, inputMaxValue+1)
	cases := []struct {
		name, field string
		do          func(ctx context.Context) error
	}{
		{"set with an empty key", "key", func(ctx context.Context) error {
			_, err := kvc.Set(ctx, &georaftv1.SetRequest{Value: []byte("v")})
			return err
		}},
		{"get with an empty key", "key", func(ctx context.Context) error {
			_, err := kvc.Get(ctx, &georaftv1.GetRequest{})
			return err
		}},
		{"delete with an empty key", "key", func(ctx context.Context) error {
			_, err := kvc.Delete(ctx, &georaftv1.DeleteRequest{})
			return err
		}},
		{"set with an oversized key", "key", func(ctx context.Context) error {
			_, err := kvc.Set(ctx, &georaftv1.SetRequest{Key: longKey, Value: []byte("v")})
			return err
		}},
		{"get with an oversized key", "key", func(ctx context.Context) error {
			_, err := kvc.Get(ctx, &georaftv1.GetRequest{Key: longKey, ReadMode: georaftv1.ReadMode_READ_MODE_INDEX})
			return err
		}},
		{"delete with an oversized key", "key", func(ctx context.Context) error {
			_, err := kvc.Delete(ctx, &georaftv1.DeleteRequest{Key: longKey})
			return err
		}},
		{"set with an oversized value", "value", func(ctx context.Context) error {
			_, err := kvc.Set(ctx, &georaftv1.SetRequest{Key: []byte("k"), Value: longValue})
			return err
		}},
		{"get with an unknown read mode", "read_mode", func(ctx context.Context) error {
			_, err := kvc.Get(ctx, &georaftv1.GetRequest{Key: []byte("k"), ReadMode: 42})
			return err
		}},
		{"get with a negative read mode", "read_mode", func(ctx context.Context) error {
			_, err := kvc.Get(ctx, &georaftv1.GetRequest{Key: []byte("k"), ReadMode: -1})
			return err
		}},
		{"transfer to an unknown node", "target_id", func(ctx context.Context) error {
			_, err := kvc.TransferLeader(ctx, &georaftv1.TransferLeaderRequest{TargetId: 99})
			return err
		}},
		{"transfer to node 0", "target_id", func(ctx context.Context) error {
			_, err := kvc.TransferLeader(ctx, &georaftv1.TransferLeaderRequest{})
			return err
		}},
	}
	for _, tc := range cases {
		checkInvalid(t, tc.name, call(tc.do), tc.field)
	}
	// A refused write never reached the state machine: the one key the refused writes
	// could have created, "k", does not exist.
	got, err := c.get(c.waitLeader(10*time.Second), "k", georaftv1.ReadMode_READ_MODE_INDEX)
	if err != nil || got.Found {
		t.Fatalf("key \"k\" after refused writes: found=%v err=%v", got.GetFound(), err)
	}
	c.checkStillHealthy(metrics)
}

// A write session needs both its client id and its sequence; an empty session means none.
func TestIncompleteWriteSessionRefused(t *testing.T) {
	c, metrics := newInputCluster(t)
	leader := c.waitLeader(10 * time.Second)
	kvc := c.clients[leader]

	// An empty session is no session: the write is applied like any other.
	if err := call(func(ctx context.Context) error {
		_, err := kvc.Set(ctx, &georaftv1.SetRequest{Key: []byte("k"), Value: []byte("v"), Session: &georaftv1.WriteSession{}})
		return err
	}); err != nil {
		t.Fatalf("set with an empty session: %v", err)
	}

	for _, tc := range []struct {
		name, field string
		session     *georaftv1.WriteSession
	}{
		{"client id without a sequence", "session.sequence", &georaftv1.WriteSession{ClientId: 7}},
		{"sequence without a client id", "session.client_id", &georaftv1.WriteSession{Sequence: 3}},
	} {
		err := call(func(ctx context.Context) error {
			_, err := kvc.Set(ctx, &georaftv1.SetRequest{Key: []byte("k"), Value: []byte("v"), Session: tc.session})
			return err
		})
		checkInvalid(t, "set with a "+tc.name, err, tc.field)
		err = call(func(ctx context.Context) error {
			_, err := kvc.Delete(ctx, &georaftv1.DeleteRequest{Key: []byte("k"), Session: tc.session})
			return err
		})
		checkInvalid(t, "delete with a "+tc.name, err, tc.field)
	}
	c.checkStillHealthy(metrics)
}

// Keys and values are bytes, not text: every byte value, NUL, invalid UTF-8 and an empty
// value round-trip exactly in every read mode, on the leader and on a follower.
func TestBinaryKeysAndValuesRoundTrip(t *testing.T) {
	c, metrics := newInputCluster(t)
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	kvc := c.clients[leader]

	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	cases := []struct {
		name       string
		key, value []byte
	}{
		{"every byte value", every, every},
		{"a lone NUL", []byte{0}, []byte{0}},
		{"NULs inside", []byte("a\x00b"), []byte("x\x00y\x00")},
		{"invalid UTF-8", []byte{0xff, 0xfe, 0xfd}, []byte{0xc3, 0x28, 0xa0, 0xa1}},
		{"a truncated UTF-8 sequence", []byte("caf\xc3"), []byte("\xe2\x82")},
		{"an empty value", []byte("empty-value"), []byte{}},
		{"a key at the size limit", bytes.Repeat([]byte{0x80}, inputMaxKey), bytes.Repeat([]byte{0x00}, inputMaxValue)},
	}
	for _, tc := range cases {
		var index uint64
		err := call(func(ctx context.Context) error {
			resp, err := kvc.Set(ctx, &georaftv1.SetRequest{Key: tc.key, Value: tc.value})
			index = resp.GetIndex()
			return err
		})
		if err != nil {
			t.Fatalf("%s: set: %v", tc.name, err)
		}
		c.waitApplied(follower, index, 10*time.Second)
		for _, read := range []struct {
			node int
			mode georaftv1.ReadMode
		}{
			{leader, georaftv1.ReadMode_READ_MODE_LEASE},
			{leader, georaftv1.ReadMode_READ_MODE_INDEX},
			{leader, georaftv1.ReadMode_READ_MODE_LOG},
			{follower, georaftv1.ReadMode_READ_MODE_STALE},
		} {
			var got *georaftv1.GetResponse
			err := call(func(ctx context.Context) error {
				var err error
				got, err = c.clients[read.node].Get(ctx, &georaftv1.GetRequest{Key: tc.key, ReadMode: read.mode})
				return err
			})
			if err != nil || !got.Found || !bytes.Equal(got.Value, tc.value) {
				t.Fatalf("%s: %v read on node %d: found=%v value=%q err=%v, want %q",
					tc.name, read.mode, read.node+1, got.GetFound(), got.GetValue(), err, tc.value)
			}
		}
	}
	// Binary keys are distinct keys: "a\x00b" is not "a", and deleting one leaves the others.
	got, err := c.get(leader, "a", georaftv1.ReadMode_READ_MODE_INDEX)
	if err != nil || got.Found {
		t.Fatalf("key \"a\" found=%v err=%v: it was never written", got.GetFound(), err)
	}
	for _, tc := range cases {
		var existed bool
		err := call(func(ctx context.Context) error {
			resp, err := kvc.Delete(ctx, &georaftv1.DeleteRequest{Key: tc.key})
			existed = resp.GetExisted()
			return err
		})
		if err != nil || !existed {
			t.Fatalf("%s: delete: existed=%v err=%v", tc.name, existed, err)
		}
	}
	c.checkStillHealthy(metrics)
}

// rawCodec sends and receives bytes as they are, so a test can put anything on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// Bytes that are not a valid protobuf message are refused by gRPC before the service sees
// them; unknown fields are ignored (forward compatibility); unknown methods are
// UNIMPLEMENTED. The node stays healthy.
func TestMalformedProtobufRefused(t *testing.T) {
	c, metrics := newInputCluster(t)
	leader := c.waitLeader(10 * time.Second)
	conn := c.conns[leader]
	invoke := func(method string, body []byte) ([]byte, error) {
		var out []byte
		err := call(func(ctx context.Context) error {
			return conn.Invoke(ctx, method, &body, &out, grpc.ForceCodec(rawCodec{}))
		})
		return out, err
	}

	for name, body := range map[string][]byte{
		"a truncated varint":          {0x08, 0xff},
		"a length beyond the message": {0x0a, 0x7f, 'k'},
		"an invalid wire type":        {0x0f},
		"field number 0":              {0x02, 0x01, 'k'},
	} {
		_, err := invoke("/georaft.v1.KVService/Set", body)
		// gRPC's own answer to a request it cannot decode.
		if status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), "unmarshal") {
			t.Fatalf("Set with %s: got %v, want gRPC's INTERNAL unmarshalling error", name, err)
		}
	}

	// protobuf treats a known field sent with the wrong wire type as an unknown field, so
	// this request arrives without a key, and the service says so.
	keyAsInteger := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 5)
	_, err := invoke("/georaft.v1.KVService/Set", keyAsInteger)
	checkInvalid(t, "Set with the key field encoded as an integer", err, "key")

	// A newer client's extra field is skipped, and the request works.
	valid, err := proto.Marshal(&georaftv1.SetRequest{Key: []byte("future"), Value: []byte("client")})
	if err != nil {
		t.Fatal(err)
	}
	withUnknown := protowire.AppendBytes(protowire.AppendTag(valid, 999, protowire.BytesType), []byte("from the future"))
	out, err := invoke("/georaft.v1.KVService/Set", withUnknown)
	if err != nil {
		t.Fatalf("Set with an unknown field: %v", err)
	}
	var resp georaftv1.SetResponse
	if err := proto.Unmarshal(out, &resp); err != nil || resp.Index == 0 {
		t.Fatalf("Set with an unknown field answered %x (%v), want a log index", out, err)
	}

	if _, err := invoke("/georaft.v1.KVService/Nope", nil); status.Code(err) != codes.Unimplemented {
		t.Fatalf("an unknown method: got %v, want UNIMPLEMENTED", err)
	}
	if _, err := invoke("/georaft.v1.PeerService/Ping", nil); status.Code(err) != codes.Unimplemented {
		t.Fatalf("PeerService on the client port: got %v, want UNIMPLEMENTED", err)
	}
	c.checkStillHealthy(metrics)
}

// A session write that reuses the last applied write's sequence for another key, value or op
// is refused with REUSED_SEQUENCE and applies nothing; the same write again is answered as a
// duplicate.
func TestReusedWriteSequenceRefused(t *testing.T) {
	c, metrics := newInputCluster(t)
	leader := c.waitLeader(10 * time.Second)
	kvc := c.clients[leader]
	session := &georaftv1.WriteSession{ClientId: 41, Sequence: 1}
	set := func(key, value string) (*georaftv1.SetResponse, error) {
		var resp *georaftv1.SetResponse
		err := call(func(ctx context.Context) error {
			var err error
			resp, err = kvc.Set(ctx, &georaftv1.SetRequest{Key: []byte(key), Value: []byte(value), Session: session})
			return err
		})
		return resp, err
	}
	if _, err := set("k", "1"); err != nil {
		t.Fatalf("first write: %v", err)
	}
	checkReused := func(what string, err error) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || errorReason(err) != node.ReasonReusedSequence {
			t.Fatalf("%s with a reused sequence: %v (reason %q), want FAILED_PRECONDITION %s", what, err, errorReason(err), node.ReasonReusedSequence)
		}
	}
	_, err := set("k", "2")
	checkReused("another value", err)
	_, err = set("other", "1")
	checkReused("another key", err)
	err = call(func(ctx context.Context) error {
		_, err := kvc.Delete(ctx, &georaftv1.DeleteRequest{Key: []byte("k"), Session: session})
		return err
	})
	checkReused("a delete", err)
	if _, err := set("k", "1"); err != nil {
		t.Fatalf("retry of the applied write: %v", err)
	}
	for key, want := range map[string]string{"k": "1", "other": ""} {
		got, err := c.get(c.waitLeader(10*time.Second), key, georaftv1.ReadMode_READ_MODE_INDEX)
		if err != nil || string(got.GetValue()) != want || got.GetFound() != (want != "") {
			t.Fatalf("%q after refused writes: %q found=%v err=%v, want %q", key, got.GetValue(), got.GetFound(), err, want)
		}
	}
	c.checkStillHealthy(metrics)
}
