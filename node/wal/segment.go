package wal

import (
	"fmt"
	"strconv"
	"strings"
)

const (
	segmentExt = ".wal"
	tmpExt     = ".tmp"
	// SEQ-FIRST.wal, both 16 lowercase hex digits.
	segmentNameLen = 16 + 1 + 16 + len(segmentExt)
)

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	File       string // full path
	Seq        uint64
	FirstIndex uint64 // from the name: the index its first entry was expected to have
	Bytes      int64
	Records    int    // including the segment header
	LastIndex  uint64 // highest entry index recorded in it; 0 if it holds no entry
}

func segmentName(seq, firstIndex uint64) string {
	return fmt.Sprintf("%016x-%016x%s", seq, firstIndex, segmentExt)
}

// parseSegmentName accepts exactly the names segmentName produces.
func parseSegmentName(name string) (seq, firstIndex uint64, ok bool) {
	if len(name) != segmentNameLen || !strings.HasSuffix(name, segmentExt) || name[16] != '-' {
		return 0, 0, false
	}
	seq, ok1 := parseHex16(name[:16])
	firstIndex, ok2 := parseHex16(name[17:33])
	return seq, firstIndex, ok1 && ok2
}

func parseHex16(s string) (uint64, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}
