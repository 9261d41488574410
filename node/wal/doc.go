// Package wal is georaftd's write-ahead log: the Raft log entries, the hard state (term,
// vote, commit) and the snapshot marker, made durable with fsync before anything that
// depends on them leaves the node.
//
// # Files
//
// The log is a sequence of segment files in one directory (DATA_DIR/wal), named
// SEQ-FIRST.wal with both numbers as 16 hex digits so that names sort in log order: SEQ
// counts segments from 1 with no gaps, FIRST is the index the segment's first entry was
// expected to have. A segment is created complete with its header (write to a temporary
// name, fsync, rename, fsync the directory) and rolled once it reaches
// Options.SegmentBytes.
//
// Every record is framed as
//
//	length uint32 LE | crc32c uint32 LE | type uint8 | payload (length bytes)
//
// with the CRC (Castagnoli) covering the length, the type and the payload. Payloads are
// unsigned varints (minimal encoding only, so decoding and re-encoding give the same
// bytes):
//
//   - segment header: magic "grftwal\x00", version, sequence, first index, then the hard
//     state and snapshot marker in force when the segment was created. Because every
//     segment restates that state, older segments can be deleted without losing it.
//   - entry: index, term, entry type (one byte), data (the rest of the payload). An entry
//     at or below the last index replaces the log suffix from its index on, so replaying
//     records in order replays truncations too.
//   - hard state: term, vote, commit.
//   - snapshot marker: index, term. The log starts after it: replay drops entries at or
//     below the marker and keeps the ones above it.
//
// # Durability
//
// Save writes its records and fsyncs once before returning. Concurrent savers share a
// writer: whoever finds no flush in progress writes everything queued in one write and
// one fsync, and the others only wait (group commit). After any failed write or fsync the
// WAL is poisoned and refuses every later call with that first error: a failed fsync may
// have dropped dirty pages, so retrying could report durable what is not.
//
// # Recovery
//
// Open replays every segment. A damaged record at the very end of the last segment (cut
// short, bad CRC, zero-filled) with nothing valid after it is what a crash in the middle
// of a write leaves: it is truncated away and reported in Recovered.TornTail. A damaged
// record anywhere else would mean losing data that was acknowledged, so Open refuses to
// start with "wal: corrupt record in FILE at offset N: REASON". Inspect runs the same
// recovery without changing any file.
package wal
