package georaftv1

import (
	"fmt"

	"github.com/georaft/georaft/readmode"
)

// This file is written by hand: the one conversion between the wire's read mode and
// readmode.Mode, which every layer above the wire uses.

// ReadModeOf is m on the wire.
func ReadModeOf(m readmode.Mode) ReadMode {
	switch m {
	case readmode.Index:
		return ReadMode_READ_MODE_INDEX
	case readmode.Log:
		return ReadMode_READ_MODE_LOG
	case readmode.Stale:
		return ReadMode_READ_MODE_STALE
	}
	return ReadMode_READ_MODE_LEASE
}

// Mode is the read mode x names. Unspecified means lease, as the protocol says; a value
// this code does not know is an error.
func (x ReadMode) Mode() (readmode.Mode, error) {
	switch x {
	case ReadMode_READ_MODE_UNSPECIFIED, ReadMode_READ_MODE_LEASE:
		return readmode.Lease, nil
	case ReadMode_READ_MODE_INDEX:
		return readmode.Index, nil
	case ReadMode_READ_MODE_LOG:
		return readmode.Log, nil
	case ReadMode_READ_MODE_STALE:
		return readmode.Stale, nil
	}
	return 0, fmt.Errorf("unknown read mode %d", int32(x))
}
