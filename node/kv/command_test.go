package kv

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	cases := []Command{
		{Op: OpSet, Key: []byte("x"), Value: []byte("5")},
		{Op: OpSet, Key: []byte("x"), Value: []byte{}},
		{Op: OpSet, Key: []byte{0, 1, 2}, Value: bytes.Repeat([]byte{0xff}, 300), ClientID: 1<<64 - 1, Seq: 1<<63 + 5},
		{Op: OpDelete, Key: []byte("gone"), ClientID: 7, Seq: 1},
		{Op: OpGet, Key: []byte("k")},
	}
	for _, c := range cases {
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode(%v): %v", c, err)
		}
		if len(enc) != c.EncodedSize() {
			t.Errorf("%v: EncodedSize %d, encoding is %d bytes", c, c.EncodedSize(), len(enc))
		}
		if len(enc) > len(c.Key)+len(c.Value)+MaxEncodingOverhead {
			t.Errorf("%v: %d bytes, more than MaxEncodingOverhead over key and value", c, len(enc))
		}
		got, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(%v)): %v", c, err)
		}
		if !commandsEqual(got, c) {
			t.Errorf("round trip: got %v, want %v", got, c)
		}
	}
}

func commandsEqual(a, b Command) bool {
	return a.Op == b.Op && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) &&
		a.ClientID == b.ClientID && a.Seq == b.Seq
}

func TestEncodeRefusesWhatDecodeWouldRefuse(t *testing.T) {
	cases := []struct {
		cmd  Command
		want string
	}{
		{Command{Op: OpNone, Key: []byte("k")}, "unknown op 0"},
		{Command{Op: Op(9), Key: []byte("k")}, "unknown op 9"},
		{Command{Op: OpSet}, "empty key"},
		{Command{Op: OpDelete, Key: []byte("k"), Value: []byte("v")}, "DEL carries no value"},
		{Command{Op: OpSet, Key: []byte("k"), ClientID: 3}, "seq 0"},
		{Command{Op: OpSet, Key: []byte("k"), Seq: 3}, "seq 3 without a client id"},
	}
	for _, c := range cases {
		_, err := c.cmd.Encode()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Encode(%+v) = %v, want an error containing %q", c.cmd, err, c.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	valid, err := (&Command{Op: OpSet, Key: []byte("key"), Value: []byte("value"), ClientID: 300, Seq: 2}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty command"},
		{"version", []byte{2, 1}, "unknown version 2"},
		{"no op", []byte{1}, "truncated before the op"},
		{"op", []byte{1, 7, 0, 1, 'k'}, "unknown op 7"},
		{"truncated client", []byte{1, 1, 0x80}, "truncated client id"},
		{"overflow", append([]byte{1, 1}, bytes.Repeat([]byte{0xff}, 11)...), "overflows 64 bits"},
		{"seq zero", []byte{1, 1, 5, 0, 1, 'k', 0}, "seq 0"},
		{"empty key", []byte{1, 3, 0, 0}, "empty key"},
		{"key too long", []byte{1, 3, 0, 9, 'k'}, "key at offset 3 claims 9 bytes, 1 remain"},
		{"no value", []byte{1, 1, 0, 1, 'k'}, "truncated value length"},
		{"trailing", append(append([]byte{}, valid...), 0), "1 trailing bytes"},
		{"value on delete", []byte{1, 2, 0, 1, 'k', 1, 'v'}, "2 trailing bytes"},
		{"cut", valid[:len(valid)-1], "value at offset"},
	}
	for _, c := range cases {
		_, err := Decode(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Decode(%x) = %v, want an error containing %q", c.name, c.data, err, c.want)
			continue
		}
		if !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%s: %v does not wrap ErrMalformedCommand", c.name, err)
		}
	}
}

func TestCommandString(t *testing.T) {
	long := bytes.Repeat([]byte("a"), 1<<20)
	cases := []struct {
		cmd  Command
		want string
	}{
		{Command{Op: OpSet, Key: []byte("x"), Value: []byte("5")}, `SET x 5`},
		{Command{Op: OpDelete, Key: []byte("x")}, `DEL x`},
		{Command{Op: OpGet, Key: []byte("x")}, `GET x`},
		{Command{Op: OpSet, Key: []byte("x"), Value: []byte{}}, `SET x ""`},
		{Command{Op: OpSet, Key: []byte("my key"), Value: []byte("a\nb")}, `SET "my key" "a\nb"`},
		{Command{Op: OpSet, Key: []byte{0xff, 0}, Value: []byte(`say "hi"`)}, `SET "\xff\x00" "say \"hi\""`},
		{Command{Op: OpSet, Key: []byte("città"), Value: []byte("ok")}, `SET città ok`},
		{Command{Op: OpSet, Key: []byte("k"), Value: long}, `SET k "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…" (1048576 bytes)`},
		{Command{Op: OpSet, Key: []byte("k"), Value: append(bytes.Repeat([]byte("a"), 31), []byte("éééééééééééééééééééééééééééééééééé")...)},
			`SET k "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…" (99 bytes)`},
		{Command{Op: OpSet, Key: []byte("x"), Value: []byte("5"), ClientID: 42, Seq: 7}, `SET x 5 client=42 seq=7`},
		{Command{Op: OpDelete, Key: []byte("x"), ClientID: 42, Seq: 8}, `DEL x client=42 seq=8`},
		{Command{Op: Op(9), Key: []byte("x")}, `op(9) x`},
	}
	for _, c := range cases {
		if got := c.cmd.String(); got != c.want {
			t.Errorf("String() = %s\n              want %s", got, c.want)
		}
	}
}
