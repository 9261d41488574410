// Package kv is georaft's replicated state machine: the command codec written into log
// entries, the key-value map those entries build, the exactly-once session table, the
// snapshot codec and the client limits.
//
// Everything a Store does in Apply depends only on the log, never on the local clock or
// configuration, so replicas that apply the same entries hold the same state (compare them
// with Hash). Exactly-once writes: a client numbers its writes (ClientID, Seq); the store
// remembers, per client, the last Seq applied and its result, answers a retry of it from
// memory, and refuses older ones. The table is bounded and evicts the client whose last
// entry is oldest in the log.
package kv
