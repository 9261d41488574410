package client

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// A node applies a write only if its sequence is above the last one it applied for that
// client id, and answers a lower or equal one with the stored result without applying it.
// Two concurrent writes under one client id could therefore reach the log out of order and
// the lower one would be silently dropped. So each client id carries at most one write in
// flight: a write takes an idle session for its whole life (every retry included) and gives
// it back when it is done. A client used from one goroutine needs one session, the one
// whose id is Options.ClientID; concurrent writers get extra sessions with random ids.
type session struct {
	clientID uint64
	lastSeq  uint64
}

type sessionPool struct {
	mu      sync.Mutex
	primary uint64
	idle    []*session
	created int
}

func newSessionPool(primary uint64) *sessionPool {
	if primary == 0 {
		primary = randomClientID()
	}
	return &sessionPool{primary: primary, idle: []*session{{clientID: primary}}, created: 1}
}

// WriteSession identifies one logical write: every retry of it carries the same pair.
type WriteSession struct {
	ClientID uint64
	Sequence uint64
}

// acquire takes an idle session and assigns the next sequence number on it.
func (p *sessionPool) acquire() (*session, WriteSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s *session
	if n := len(p.idle); n > 0 {
		s = p.idle[n-1]
		p.idle = p.idle[:n-1]
	} else {
		s = &session{clientID: randomClientID()}
		p.created++
	}
	s.lastSeq++
	return s, WriteSession{ClientID: s.clientID, Sequence: s.lastSeq}
}

func (p *sessionPool) release(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = append(p.idle, s)
}

func (p *sessionPool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.created
}

func randomClientID() uint64 {
	var b [8]byte
	for {
		// crypto/rand.Read never fails on supported platforms (it panics otherwise).
		_, _ = rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}
