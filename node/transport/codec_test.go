package transport

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// sentTypes is every message type that travels through Send: all but MsgSnap.
func sentTypes() []raft.MessageType {
	var types []raft.MessageType
	for t := raft.MsgPreVote; t <= raft.MsgTimeoutNow; t++ {
		if t != raft.MsgSnap {
			types = append(types, t)
		}
	}
	return types
}

// headerFields travel in the PeerHeader or are the body's kind, not in fieldMask.
var headerFields = []string{"Type", "From", "To"}

// fullMessage sets every field the wire carries for typ to a distinct non-zero value, by
// reflection, so a field added to the codec's table is exercised without editing this test.
func fullMessage(t testing.TB, typ raft.MessageType, seed uint64) raft.Message {
	t.Helper()
	m := raft.Message{Type: typ, From: 7, To: 9}
	v := reflect.ValueOf(&m).Elem()
	next := seed
	for i := range fieldCount {
		bit := fieldMask(1) << i
		if wireFields[typ]&bit == 0 || bit == fieldEntries {
			continue
		}
		next++
		f := v.FieldByName(fieldNames[i])
		switch f.Interface().(type) {
		case uint64:
			f.SetUint(next * 1000003)
		case bool:
			f.SetBool(true)
		case string:
			f.SetString("reason " + strings.Repeat("x", int(next%5)) + " é\x00")
		case time.Duration:
			f.SetInt(int64(next) * int64(time.Millisecond+7))
		default:
			t.Fatalf("field %s of type %s: teach fullMessage to fill it", fieldNames[i], f.Type())
		}
	}
	if wireFields[typ]&fieldEntries != 0 {
		m.Entries = []raft.Entry{
			{Index: m.Index + 1, Term: m.Term, Type: raft.EntryNoop},
			{Index: m.Index + 2, Term: m.Term, Type: raft.EntryNormal, Data: []byte("SET x 5")},
			{Index: m.Index + 3, Term: m.Term + 1, Type: raft.EntryNormal, Data: []byte{0, 1, 2, 255}},
		}
	}
	return m
}

func roundTrip(t *testing.T, m raft.Message) raft.Message {
	t.Helper()
	enc, err := EncodeMessage(m)
	if err != nil {
		t.Fatalf("encode %v: %v", m.Type, err)
	}
	wire, err := proto.Marshal(enc)
	if err != nil {
		t.Fatalf("marshal %v: %v", m.Type, err)
	}
	var back georaftv1.RaftMessage
	if err := proto.Unmarshal(wire, &back); err != nil {
		t.Fatalf("unmarshal %v: %v", m.Type, err)
	}
	got, err := DecodeMessage(m.From, m.To, &back)
	if err != nil {
		t.Fatalf("decode %v: %v", m.Type, err)
	}
	return got
}

func TestRoundTripEveryTypeWithEveryField(t *testing.T) {
	for _, typ := range sentTypes() {
		t.Run(typ.String(), func(t *testing.T) {
			if _, ok := wireFields[typ]; !ok {
				t.Fatalf("%v has no wire mapping", typ)
			}
			m := fullMessage(t, typ, uint64(typ)*100)
			if got := presentFields(&m); got != wireFields[typ] {
				t.Fatalf("test message sets %v, want every carried field %v", got, wireFields[typ])
			}
			got := roundTrip(t, m)
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip changed the message:\n got %+v\nwant %+v", got, m)
			}
			// Reject false and zero values must survive too (VoteGranted/Success invert it).
			zero := raft.Message{Type: typ, From: 1, To: 2}
			if got := roundTrip(t, zero); !reflect.DeepEqual(got, zero) {
				t.Fatalf("round trip of the zero %v changed it: %+v", typ, got)
			}
		})
	}
}

// TestNoMessageFieldForgotten fails when raft.Message gains a field the codec does not know,
// or a field no message type carries.
func TestNoMessageFieldForgotten(t *testing.T) {
	typ := reflect.TypeFor[raft.Message]()
	var carriedByAny fieldMask
	for _, mask := range wireFields {
		carriedByAny |= mask
	}
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if slices.Contains(headerFields, name) {
			continue
		}
		idx := slices.Index(fieldNames[:], name)
		if idx < 0 {
			t.Errorf("raft.Message.%s is unknown to the codec: add it to fieldNames, presentFields and the wire mapping", name)
			continue
		}
		bit := fieldMask(1) << idx
		// presentFields must notice the field when it alone is set.
		var m raft.Message
		f := reflect.ValueOf(&m).Elem().Field(i)
		switch f.Kind() {
		case reflect.Uint64, reflect.Uint8:
			f.SetUint(1)
		case reflect.Int64:
			f.SetInt(1)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.String:
			f.SetString("x")
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Struct:
			f.Field(0).SetUint(1)
		default:
			t.Fatalf("raft.Message.%s has kind %v: teach this test to set it", name, f.Kind())
		}
		if got := presentFields(&m); got != bit {
			t.Errorf("setting only %s: presentFields = %v, want %v", name, got, bit)
		}
		// Snapshot travels in InstallSnapshotRequest.meta (SendSnapshot), never in Send.
		if name != "Snapshot" && carriedByAny&bit == 0 {
			t.Errorf("raft.Message.%s is carried by no message type", name)
		}
	}
	if typ.NumField() != len(headerFields)+fieldCount {
		t.Errorf("raft.Message has %d fields, codec knows %d", typ.NumField(), len(headerFields)+fieldCount)
	}
}

func TestEncodeRefusesWhatTheWireCannotCarry(t *testing.T) {
	for _, typ := range sentTypes() {
		for i := range fieldCount {
			bit := fieldMask(1) << i
			if wireFields[typ]&bit != 0 {
				continue
			}
			m := raft.Message{Type: typ, Term: 3}
			f := reflect.ValueOf(&m).Elem().FieldByName(fieldNames[i])
			switch f.Kind() {
			case reflect.Uint64, reflect.Uint8:
				f.SetUint(5)
			case reflect.Int64:
				f.SetInt(5)
			case reflect.Bool:
				f.SetBool(true)
			case reflect.String:
				f.SetString("why")
			case reflect.Slice:
				f.Set(reflect.MakeSlice(f.Type(), 1, 1))
			case reflect.Struct:
				f.Field(0).SetUint(5)
			}
			_, err := EncodeMessage(m)
			if err == nil || !strings.Contains(err.Error(), fieldNames[i]) {
				t.Errorf("%v with %s set: got %v, want an error naming the field", typ, fieldNames[i], err)
			}
		}
	}
	bad := []struct {
		name string
		m    raft.Message
	}{
		{"snap", raft.Message{Type: raft.MsgSnap, Snapshot: raft.SnapshotMeta{Index: 1, Term: 1}}},
		{"unknown type", raft.Message{Type: 200}},
		{"negative lease", raft.Message{Type: raft.MsgHeartbeat, LeaseDuration: -time.Second}},
		{"negative remaining", raft.Message{Type: raft.MsgVoteResp, LeaseRemaining: -1}},
		{"negative follower clock", raft.Message{Type: raft.MsgHeartbeatResp, FollowerClock: -1}},
		{"unknown entry type", raft.Message{Type: raft.MsgApp, Entries: []raft.Entry{{Index: 1, Type: 9}}}},
	}
	for _, tc := range bad {
		if _, err := EncodeMessage(tc.m); err == nil {
			t.Errorf("%s: encoded without error", tc.name)
		}
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	clock := &georaftv1.LeaderClock{SentAtNanos: 5, Round: 1}
	cases := []struct {
		name string
		msg  *georaftv1.RaftMessage
	}{
		{"nil", nil},
		{"no body", &georaftv1.RaftMessage{}},
		{"empty vote body", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_RequestVote{}}},
		{"empty append body", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntries{}}},
		{"empty snapshot result", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_SnapshotResult{}}},
		{"append without clock", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntries{
			AppendEntries: &georaftv1.AppendEntriesRequest{Term: 1}}}},
		{"heartbeat response without clock", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_HeartbeatResponse{
			HeartbeatResponse: &georaftv1.HeartbeatResponse{Term: 1}}}},
		{"negative lease", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_Heartbeat{
			Heartbeat: &georaftv1.HeartbeatRequest{Term: 1, LeaseDurationNanos: -1, Clock: clock}}}},
		{"negative remaining", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_TimeoutNow{
			TimeoutNow: &georaftv1.TimeoutNowRequest{Term: 1, LeaseRemainingNanos: -5}}}},
		{"append with negative follower clock", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntries{
			AppendEntries: &georaftv1.AppendEntriesRequest{Term: 1, Clock: clock, FollowerClockNanos: -1}}}},
		{"append response with negative follower clock", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntriesResponse{
			AppendEntriesResponse: &georaftv1.AppendEntriesResponse{Term: 1, Success: true, Clock: clock, FollowerClockNanos: -1}}}},
		{"heartbeat with negative follower clock", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_Heartbeat{
			Heartbeat: &georaftv1.HeartbeatRequest{Term: 1, Clock: clock, FollowerClockNanos: -1}}}},
		{"heartbeat response with negative follower clock", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_HeartbeatResponse{
			HeartbeatResponse: &georaftv1.HeartbeatResponse{Term: 1, Clock: clock, FollowerClockNanos: -1}}}},
		{"unspecified entry type", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntries{
			AppendEntries: &georaftv1.AppendEntriesRequest{Term: 1, PrevLogIndex: 4, Clock: clock,
				Entries: []*georaftv1.Entry{{Index: 5, Term: 1}}}}}},
		{"unknown entry type", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntries{
			AppendEntries: &georaftv1.AppendEntriesRequest{Term: 1, PrevLogIndex: 4, Clock: clock,
				Entries: []*georaftv1.Entry{{Index: 5, Term: 1, Type: 77}}}}}},
		{"gap in entries", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntries{
			AppendEntries: &georaftv1.AppendEntriesRequest{Term: 1, PrevLogIndex: 4, Clock: clock,
				Entries: []*georaftv1.Entry{{Index: 5, Term: 1, Type: 1}, {Index: 7, Term: 1, Type: 1}}}}}},
		{"entries not after prev", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntries{
			AppendEntries: &georaftv1.AppendEntriesRequest{Term: 1, PrevLogIndex: 4, Clock: clock,
				Entries: []*georaftv1.Entry{{Index: 4, Term: 1, Type: 1}}}}}},
		{"nil entry", &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntries{
			AppendEntries: &georaftv1.AppendEntriesRequest{Term: 1, Clock: clock, Entries: []*georaftv1.Entry{nil}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := DecodeMessage(1, 2, tc.msg); err == nil {
				t.Fatalf("decoded %+v without error", m)
			}
		})
	}

	// A body kind from a newer protocol version arrives as an unknown field.
	future := protowire.AppendTag(nil, 99, protowire.BytesType)
	future = protowire.AppendBytes(future, []byte{8, 1})
	var msg georaftv1.RaftMessage
	if err := proto.Unmarshal(future, &msg); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeMessage(1, 2, &msg); err == nil || !strings.Contains(err.Error(), "no body") {
		t.Fatalf("unknown body kind: got %v, want a no-body error", err)
	}
}
