package config_test

import (
	"fmt"

	"github.com/georaft/georaft/node/config"
)

// GEORAFT_PEERS holds the peer list in one line, for environments where writing a file is
// awkward (containers, the lab).
func ExampleParsePeers() {
	peers, err := config.ParsePeers("1=us-central1@10.0.0.1:7101/10.0.0.1:7201,2=europe-west1@[fd00::2]:7101/[fd00::2]:7201")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range peers {
		fmt.Printf("%d %s dial %s, clients %s\n", p.ID, p.Region, p.PeerAddress, p.ClientAddress)
	}
	fmt.Println(config.FormatPeers(peers[:1]))
	// Output:
	// 1 us-central1 dial 10.0.0.1:7101, clients 10.0.0.1:7201
	// 2 europe-west1 dial [fd00::2]:7101, clients [fd00::2]:7201
	// 1=us-central1@10.0.0.1:7101/10.0.0.1:7201
}
