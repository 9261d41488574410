package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Op is what a command does.
type Op uint8

const (
	// OpNone is the zero Op: never encoded; the Op of a Result for a no-op entry.
	OpNone Op = iota
	// OpSet stores Value at Key.
	OpSet
	// OpDelete removes Key.
	OpDelete
	// OpGet reads Key through the log (ReadLog): the value as of the entry's position.
	OpGet
)

func (o Op) String() string {
	switch o {
	case OpNone:
		return "NONE"
	case OpSet:
		return "SET"
	case OpDelete:
		return "DEL"
	case OpGet:
		return "GET"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

func (o Op) valid() bool { return o == OpSet || o == OpDelete || o == OpGet }

// Command is one entry's payload: an operation on one key, with the client's write session.
// ClientID 0 means no session: the write is applied every time it appears in the log.
type Command struct {
	Op       Op
	Key      []byte
	Value    []byte // OpSet only
	ClientID uint64
	Seq      uint64 // with ClientID: starts at 1, a retry reuses its write's number
}

// commandVersion is the first byte of every encoded command. Bump it when the layout
// changes; Decode keeps reading every older version found in logs.
const commandVersion = 1

// ErrMalformedCommand is wrapped by every Decode error.
var ErrMalformedCommand = errors.New("malformed command")

// Layout, version 1:
//
//	version  byte (1)
//	op       byte
//	client   uvarint   (0: no session)
//	seq      uvarint   (present only when client != 0; never 0)
//	key      uvarint length, bytes (never empty)
//	value    uvarint length, bytes (OpSet only)
//
// Decode accepts nothing else: no trailing bytes, no value on DEL or GET.

// MaxEncodingOverhead is the most an encoding adds to len(Key)+len(Value): version, op and
// four uvarints (client, seq, key length, value length).
const MaxEncodingOverhead = 2 + 4*binary.MaxVarintLen64

// EncodedSize is the length of c's encoding, computed without encoding it.
func (c *Command) EncodedSize() int {
	n := 2 + uvarintLen(c.ClientID)
	if c.ClientID != 0 {
		n += uvarintLen(c.Seq)
	}
	n += uvarintLen(uint64(len(c.Key))) + len(c.Key)
	if c.Op == OpSet {
		n += uvarintLen(uint64(len(c.Value))) + len(c.Value)
	}
	return n
}

// Encode returns c's binary form. It refuses commands Decode would refuse, so whatever the
// leader proposes every replica can decode.
func (c *Command) Encode() ([]byte, error) {
	return c.AppendEncode(make([]byte, 0, c.EncodedSize()))
}

// AppendEncode appends c's binary form to dst.
func (c *Command) AppendEncode(dst []byte) ([]byte, error) {
	if err := c.validate(); err != nil {
		return dst, fmt.Errorf("kv: encode %s: %w", c.Op, err)
	}
	dst = append(dst, commandVersion, byte(c.Op))
	dst = binary.AppendUvarint(dst, c.ClientID)
	if c.ClientID != 0 {
		dst = binary.AppendUvarint(dst, c.Seq)
	}
	dst = binary.AppendUvarint(dst, uint64(len(c.Key)))
	dst = append(dst, c.Key...)
	if c.Op == OpSet {
		dst = binary.AppendUvarint(dst, uint64(len(c.Value)))
		dst = append(dst, c.Value...)
	}
	return dst, nil
}

func (c *Command) validate() error {
	switch {
	case !c.Op.valid():
		return fmt.Errorf("unknown op %d", uint8(c.Op))
	case len(c.Key) == 0:
		return errors.New("empty key")
	case c.Op != OpSet && len(c.Value) != 0:
		return fmt.Errorf("%s carries no value, got %d bytes", c.Op, len(c.Value))
	case c.ClientID != 0 && c.Seq == 0:
		return fmt.Errorf("session of client %d has seq 0 (sequences start at 1)", c.ClientID)
	case c.ClientID == 0 && c.Seq != 0:
		return fmt.Errorf("seq %d without a client id", c.Seq)
	}
	return nil
}

// Decode parses an encoded command. Key and Value alias data; copy them to keep them past
// data's lifetime. Every error wraps ErrMalformedCommand and says what was wrong where.
func Decode(data []byte) (Command, error) {
	var c Command
	d := decoder{buf: data}
	if len(data) == 0 {
		return c, d.fail("empty command")
	}
	if v := data[0]; v != commandVersion {
		return c, d.fail(fmt.Sprintf("unknown version %d (this build reads version %d)", v, commandVersion))
	}
	if len(data) < 2 {
		return c, d.fail("truncated before the op")
	}
	c.Op = Op(data[1])
	if !c.Op.valid() {
		return c, d.fail(fmt.Sprintf("unknown op %d", data[1]))
	}
	d.off = 2
	var ok bool
	if c.ClientID, ok = d.uvarint("client id"); !ok {
		return Command{}, d.err
	}
	if c.ClientID != 0 {
		if c.Seq, ok = d.uvarint("seq"); !ok {
			return Command{}, d.err
		}
		if c.Seq == 0 {
			return Command{}, d.fail(fmt.Sprintf("session of client %d has seq 0", c.ClientID))
		}
	}
	if c.Key, ok = d.bytes("key", "key length"); !ok {
		return Command{}, d.err
	}
	if len(c.Key) == 0 {
		return Command{}, d.fail("empty key")
	}
	if c.Op == OpSet {
		if c.Value, ok = d.bytes("value", "value length"); !ok {
			return Command{}, d.err
		}
	}
	if rest := len(data) - d.off; rest != 0 {
		return Command{}, d.fail(fmt.Sprintf("%d trailing bytes at offset %d", rest, d.off))
	}
	return c, nil
}

// decoder walks an encoded command, remembering the first error.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) fail(reason string) error {
	d.err = fmt.Errorf("kv: decode command (%d bytes): %s: %w", len(d.buf), reason, ErrMalformedCommand)
	return d.err
}

func (d *decoder) uvarint(field string) (uint64, bool) {
	v, n := binary.Uvarint(d.buf[d.off:])
	switch {
	case n == 0:
		d.fail(fmt.Sprintf("truncated %s at offset %d", field, d.off))
		return 0, false
	case n < 0:
		d.fail(fmt.Sprintf("%s at offset %d overflows 64 bits", field, d.off))
		return 0, false
	}
	d.off += n
	return v, true
}

// bytes reads a length-prefixed field. Both names are passed in so that the error path
// costs nothing on the hot path.
func (d *decoder) bytes(field, lengthField string) ([]byte, bool) {
	start := d.off
	n, ok := d.uvarint(lengthField)
	if !ok {
		return nil, false
	}
	if rest := uint64(len(d.buf) - d.off); n > rest {
		d.fail(fmt.Sprintf("%s at offset %d claims %d bytes, %d remain", field, start, n, rest))
		return nil, false
	}
	b := d.buf[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b, true
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// String renders c for people: `SET x 5`, `DEL x`, `GET x`, with a session suffix
// `client=7 seq=3` when there is one. Keys and values that are empty, hold spaces, quotes or
// non-printable bytes are quoted Go-style; long ones are cut and their size given:
// `SET k "aaaa…" (1048576 bytes)`.
func (c Command) String() string {
	var b strings.Builder
	b.WriteString(c.Op.String())
	b.WriteByte(' ')
	writeDisplay(&b, c.Key)
	if c.Op == OpSet || len(c.Value) > 0 {
		b.WriteByte(' ')
		writeDisplay(&b, c.Value)
	}
	if c.ClientID != 0 || c.Seq != 0 {
		fmt.Fprintf(&b, " client=%d seq=%d", c.ClientID, c.Seq)
	}
	return b.String()
}

const (
	// displayMax is the longest key or value String shows whole; longer ones show the
	// first displayPrefix bytes.
	displayMax    = 64
	displayPrefix = 32
)

func writeDisplay(b *strings.Builder, v []byte) {
	if len(v) > displayMax {
		cut := displayPrefix
		// Cut text on a rune boundary so the quoted prefix does not end in stray escapes.
		if utf8.Valid(v) {
			for cut > 0 && !utf8.RuneStart(v[cut]) {
				cut--
			}
		}
		q := strconv.Quote(string(v[:cut]))
		b.WriteString(q[:len(q)-1])
		b.WriteString(`…"`)
		fmt.Fprintf(b, " (%d bytes)", len(v))
		return
	}
	if needsQuoting(v) {
		b.WriteString(strconv.Quote(string(v)))
		return
	}
	b.Write(v)
}

func needsQuoting(v []byte) bool {
	if len(v) == 0 || !utf8.Valid(v) {
		return true
	}
	for _, r := range string(v) {
		if r == ' ' || r == '"' || r == '\\' || !strconv.IsPrint(r) {
			return true
		}
	}
	return false
}
