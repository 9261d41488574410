package etcdv3

import (
	"errors"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err         error
		read, write bool
	}{
		{status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), true, true},
		{rpctypes.ErrGRPCNoLeader, true, true},
		// The connection broke with the request on it: it may have been applied.
		{status.Error(codes.Unavailable, "error reading from server: EOF"), true, false},
		{rpctypes.ErrGRPCLeaderChanged, true, false},
		{rpctypes.ErrGRPCCompacted, false, false},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), false, false},
		{errors.New("not a status"), false, false},
	} {
		if got := retryable(tc.err, true); got != tc.read {
			t.Errorf("retryable(%v) for a read = %v, want %v", tc.err, got, tc.read)
		}
		if got := retryable(tc.err, false); got != tc.write {
			t.Errorf("retryable(%v) for a write = %v, want %v", tc.err, got, tc.write)
		}
	}
}

func TestParseTxn(t *testing.T) {
	txn, err := ParseTxn(strings.NewReader("mod(\"k\") > \"3\"\nvalue(\"k\") = \"a b\"\n\nput k \"x y\"\nget p --prefix\n\ndel k\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(txn.Compare) != 2 || txn.Compare[0].GetModRevision() != 3 || string(txn.Compare[1].GetValue()) != "a b" {
		t.Fatalf("compares: %v", txn.Compare)
	}
	if len(txn.Success) != 2 || string(txn.Success[0].GetRequestPut().Value) != "x y" || string(txn.Success[1].GetRequestRange().RangeEnd) != "q" {
		t.Fatalf("success ops: %v", txn.Success)
	}
	if len(txn.Failure) != 1 || string(txn.Failure[0].GetRequestDeleteRange().Key) != "k" {
		t.Fatalf("failure ops: %v", txn.Failure)
	}
	for _, bad := range []string{"mod(\"k\") > \"x\"\n", "value(k) ~ 1\n", "\nfrob k\n"} {
		if _, err := ParseTxn(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseTxn(%q) accepted it", bad)
		}
	}
}
