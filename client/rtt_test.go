package client

import (
	"strings"
	"testing"
	"time"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

func statusOf(id uint64, region string, peers ...*georaftv1.PeerStatus) NodeStatus {
	return NodeStatus{Status: &georaftv1.StatusResponse{Id: id, Region: region, Peers: peers}}
}

func peer(id uint64, region string, rtt time.Duration) *georaftv1.PeerStatus {
	return &georaftv1.PeerStatus{Id: id, Region: region, RttNanos: int64(rtt)}
}

func TestMeasuredRTTMatrixAveragesBothDirections(t *testing.T) {
	ms := time.Millisecond
	m, err := MeasuredRTTMatrix([]NodeStatus{
		statusOf(1, "a", peer(2, "b", 30*ms), peer(3, "c", 100*ms)),
		statusOf(2, "b", peer(1, "a", 34*ms), peer(3, "c", 80*ms)),
		statusOf(3, "c", peer(1, "a", 102*ms), peer(2, "b", 82*ms)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a, b string
		want time.Duration
	}{{"a", "b", 32 * ms}, {"b", "a", 32 * ms}, {"a", "c", 101 * ms}, {"b", "c", 81 * ms}, {"a", "a", 0}} {
		if got, _ := m.RTT(tc.a, tc.b); got != tc.want {
			t.Errorf("RTT(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestMeasuredRTTMatrixNamesAnUnmeasuredPair(t *testing.T) {
	ms := time.Millisecond
	_, err := MeasuredRTTMatrix([]NodeStatus{
		statusOf(1, "a", peer(2, "b", 30*ms), peer(3, "c", 0)),
		statusOf(2, "b", peer(1, "a", 30*ms), peer(3, "c", 0)),
		{Err: errUnreachableForTest},
	})
	if err == nil || !strings.Contains(err.Error(), "between a and c") {
		t.Fatalf("got %v, want an error naming the pair a, c", err)
	}
}

var errUnreachableForTest = &UnavailableError{Reason: "unreachable"}
