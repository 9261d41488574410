package kv

import "fmt"

// Limits bound what a client may write. A zero field means no limit. The leader checks them
// before proposing; Apply never does, because replicas configured with different limits
// must still apply the same log to the same state.
type Limits struct {
	MaxKeyBytes     int
	MaxValueBytes   int
	MaxRequestBytes int // the encoded command
}

// Field names a LimitError reports, as a gRPC BadRequest field violation would.
const (
	FieldKey     = "key"
	FieldValue   = "value"
	FieldRequest = "request"
)

// LimitError is a command refused by Limits.Check. Field is one of FieldKey, FieldValue,
// FieldRequest.
type LimitError struct {
	Field string
	Size  int // bytes
	Limit int // bytes; 0 when the field is refused for another reason (an empty key)
}

func (e *LimitError) Error() string {
	if e.Limit == 0 {
		return fmt.Sprintf("%s must not be empty", e.Field)
	}
	return fmt.Sprintf("%s is %d bytes, limit %d", e.Field, e.Size, e.Limit)
}

// Check returns a *LimitError naming the first field of cmd that breaks l, or nil.
func (l Limits) Check(cmd Command) error {
	if len(cmd.Key) == 0 {
		return &LimitError{Field: FieldKey}
	}
	if l.MaxKeyBytes > 0 && len(cmd.Key) > l.MaxKeyBytes {
		return &LimitError{Field: FieldKey, Size: len(cmd.Key), Limit: l.MaxKeyBytes}
	}
	if l.MaxValueBytes > 0 && len(cmd.Value) > l.MaxValueBytes {
		return &LimitError{Field: FieldValue, Size: len(cmd.Value), Limit: l.MaxValueBytes}
	}
	if l.MaxRequestBytes > 0 {
		if n := cmd.EncodedSize(); n > l.MaxRequestBytes {
			return &LimitError{Field: FieldRequest, Size: n, Limit: l.MaxRequestBytes}
		}
	}
	return nil
}
