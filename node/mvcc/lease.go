package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Leases are state like keys: granted and revoked through the log, with their granted TTL.
// When a lease expires is not state: the leader decides it on its own clock and proposes the
// revoke (node/lessor.go), so nothing here reads a clock.

func loadLeases(db *pebble.DB) (map[int64]int64, error) {
	leases := make(map[int64]int64)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindLease}, UpperBound: []byte{kindLease + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		ttl, n := binary.Uvarint(it.Value())
		if len(it.Key()) != 9 || n <= 0 {
			return nil, errors.New("mvcc: malformed lease record")
		}
		leases[int64(binary.BigEndian.Uint64(it.Key()[1:]))] = int64(ttl)
	}
	return leases, it.Error()
}

func (s *Store) leaseExists(id int64) bool {
	s.leaseMu.RLock()
	defer s.leaseMu.RUnlock()
	_, ok := s.leases[id]
	return ok
}

// Lease returns a lease's granted TTL in seconds.
func (s *Store) Lease(id int64) (ttl int64, ok bool) {
	s.leaseMu.RLock()
	defer s.leaseMu.RUnlock()
	ttl, ok = s.leases[id]
	return ttl, ok
}

// Leases lists every lease and its granted TTL, by ID.
func (s *Store) Leases() map[int64]int64 {
	s.leaseMu.RLock()
	defer s.leaseMu.RUnlock()
	out := make(map[int64]int64, len(s.leases))
	for id, ttl := range s.leases {
		out[id] = ttl
	}
	return out
}

// LeaseKeys lists the keys attached to a lease, in order.
func (s *Store) LeaseKeys(id int64) ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return attachedKeys(s.db, id)
}

func attachedKeys(rd reader, id int64) ([][]byte, error) {
	prefix := attachedPrefix(id)
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperOf(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var keys [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, bytes.Clone(it.Key()[len(prefix):]))
	}
	return keys, it.Error()
}

func (t *txn) leaseGrant(r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.ID <= 0 {
		return nil, ErrLeaseInvalid
	}
	if t.s.leaseExists(r.ID) {
		return nil, ErrLeaseExists
	}
	if err := t.b.Set(leaseKey(r.ID), binary.AppendUvarint(nil, uint64(r.TTL)), nil); err != nil {
		return nil, err
	}
	id, ttl := r.ID, r.TTL
	t.after = append(t.after, func() {
		t.s.leaseMu.Lock()
		t.s.leases[id] = ttl
		t.s.leaseMu.Unlock()
	})
	return &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: t.base}, ID: r.ID, TTL: r.TTL}, nil
}

// leaseRevoke deletes a lease and, in one revision, every key attached to it.
func (t *txn) leaseRevoke(r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	if !t.s.leaseExists(r.ID) {
		return nil, ErrLeaseNotFound
	}
	keys, err := attachedKeys(t.src.rd, r.ID)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys {
		rec, mod, ok, err := t.src.latest(k, 0)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := t.deleteKey(rec.keyValue(k, mod, true)); err != nil {
				return nil, err
			}
		} else if err := t.b.Delete(attachedKey(r.ID, k), nil); err != nil {
			return nil, err
		}
	}
	if err := t.b.Delete(leaseKey(r.ID), nil); err != nil {
		return nil, err
	}
	id := r.ID
	t.after = append(t.after, func() {
		t.s.leaseMu.Lock()
		delete(t.s.leases, id)
		t.s.leaseMu.Unlock()
	})
	return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: t.readRev()}}, nil
}
