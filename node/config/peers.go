package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ParsePeers reads the compact peer list GEORAFT_PEERS holds: comma-separated entries
//
//	ID=REGION@PEER_ADDRESS/CLIENT_ADDRESS
//
// for example
//
//	1=us-central1@10.0.0.1:7101/10.0.0.1:7201,2=europe-west1@10.0.0.2:7101/10.0.0.2:7201
//
// Spaces around entries are ignored. IPv6 addresses are written in brackets
// ([::1]:7101). Only the syntax is checked here; Validate checks the content.
func ParsePeers(s string) ([]Peer, error) {
	var peers []Peer
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		bad := func(why string) error {
			return fmt.Errorf("entry %d %q: %s; want ID=REGION@PEER_ADDRESS/CLIENT_ADDRESS", i+1, entry, why)
		}
		if entry == "" {
			return nil, bad("empty")
		}
		idText, rest, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, bad("no '='")
		}
		id, err := strconv.ParseUint(strings.TrimSpace(idText), 10, 64)
		if err != nil {
			return nil, bad(fmt.Sprintf("id %q is not a non-negative integer", idText))
		}
		region, addrs, ok := strings.Cut(rest, "@")
		if !ok {
			return nil, bad("no '@'")
		}
		peerAddr, clientAddr, ok := strings.Cut(addrs, "/")
		if !ok {
			return nil, bad("no '/' between the peer and client addresses")
		}
		peers = append(peers, Peer{
			ID:            id,
			Region:        strings.TrimSpace(region),
			PeerAddress:   strings.TrimSpace(peerAddr),
			ClientAddress: strings.TrimSpace(clientAddr),
		})
	}
	return peers, nil
}

// FormatPeers writes peers in the form ParsePeers reads, for GEORAFT_PEERS.
func FormatPeers(peers []Peer) string {
	parts := make([]string, len(peers))
	for i, p := range peers {
		parts[i] = fmt.Sprintf("%d=%s@%s/%s", p.ID, p.Region, p.PeerAddress, p.ClientAddress)
	}
	return strings.Join(parts, ",")
}
