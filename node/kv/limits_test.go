package kv

import (
	"bytes"
	"errors"
	"testing"
)

func TestLimitsCheck(t *testing.T) {
	limits := Limits{MaxKeyBytes: 4096, MaxValueBytes: 1 << 20, MaxRequestBytes: 1<<20 + 100}
	cases := []struct {
		name      string
		limits    Limits
		cmd       Command
		wantField string
		wantMsg   string
	}{
		{"ok", limits, Command{Op: OpSet, Key: []byte("k"), Value: []byte("v")}, "", ""},
		{"value at limit", limits, Command{Op: OpSet, Key: []byte("k"), Value: make([]byte, 1<<20)}, "", ""},
		{"empty key", limits, Command{Op: OpGet}, FieldKey, "key must not be empty"},
		{"long key", limits, Command{Op: OpDelete, Key: make([]byte, 5000)}, FieldKey, "key is 5000 bytes, limit 4096"},
		{"long value", limits, Command{Op: OpSet, Key: []byte("k"), Value: make([]byte, 1<<20+1)}, FieldValue, "value is 1048577 bytes, limit 1048576"},
		{"request", Limits{MaxRequestBytes: 64}, Command{Op: OpSet, Key: bytes.Repeat([]byte("k"), 30), Value: bytes.Repeat([]byte("v"), 30), ClientID: 1, Seq: 1}, FieldRequest, "request is 66 bytes, limit 64"},
		{"zero means no limit", Limits{}, Command{Op: OpSet, Key: make([]byte, 1<<16), Value: make([]byte, 1<<22)}, "", ""},
	}
	for _, c := range cases {
		err := c.limits.Check(c.cmd)
		if c.wantField == "" {
			if err != nil {
				t.Errorf("%s: Check = %v, want nil", c.name, err)
			}
			continue
		}
		var le *LimitError
		if !errors.As(err, &le) {
			t.Errorf("%s: Check = %v, want a *LimitError", c.name, err)
			continue
		}
		if le.Field != c.wantField || le.Error() != c.wantMsg {
			t.Errorf("%s: Check = field %q %q, want field %q %q", c.name, le.Field, le.Error(), c.wantField, c.wantMsg)
		}
	}
}
