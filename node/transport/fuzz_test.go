package transport

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// FuzzDecodeRaftMessage feeds arbitrary bytes through the path an incoming message takes.
// Decoding must never panic; whatever it accepts must encode again and decode to the same.
//
//	go test ./node/transport -run '^$' -fuzz FuzzDecodeRaftMessage -fuzztime 30s
func FuzzDecodeRaftMessage(f *testing.F) {
	for _, typ := range sentTypes() {
		full := fullMessage(f, typ, uint64(typ))
		bare := full
		bare.Entries = nil
		for _, msg := range []raft.Message{full, bare} {
			enc, err := EncodeMessage(msg)
			if err != nil {
				f.Fatalf("seed %v: %v", typ, err)
			}
			wire, err := proto.Marshal(enc)
			if err != nil {
				f.Fatalf("seed %v: %v", typ, err)
			}
			f.Add(wire)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})                         // empty append_entries
	f.Add([]byte{0x0a, 0x04, 0x22, 0x02, 0x18, 0x07}) // append with an entry of unknown type
	f.Add([]byte{0xfa, 0x06, 0x00})                   // unknown field 111
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, data []byte) {
		var pb georaftv1.RaftMessage
		if err := proto.Unmarshal(data, &pb); err != nil {
			return
		}
		m, err := DecodeMessage(3, 4, &pb)
		if err != nil {
			return
		}
		enc, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it again: %v", m, err)
		}
		again, err := DecodeMessage(3, 4, enc)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", m, err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("second round trip differs:\n got %+v\nwant %+v", again, m)
		}
	})
}
