package clusterkit

import (
	"fmt"
	"time"

	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/tlsutil"
)

// adminClient is the client certificate the kit issues with a TLS cluster.
const adminClient = "admin"

// certValidity is how long the kit's test certificates last.
const certValidity = 24 * time.Hour

func nodeCertSpec(id uint64) tlsutil.NodeSpec {
	return tlsutil.NodeSpec{ID: id, Hosts: []string{"127.0.0.1", "localhost"}}
}

// withTLS makes configure also point each node at its certificate in certDir.
func withTLS(certDir string, configure func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) {
		f := tlsutil.ClusterFileNames(certDir, []tlsutil.NodeSpec{nodeCertSpec(c.Node.ID)}, nil)
		c.TLS = config.TLSConfig{Enabled: true, CAFile: f.CA.Cert, CertFile: f.Nodes[c.Node.ID].Cert, KeyFile: f.Nodes[c.Node.ID].Key}
		if configure != nil {
			configure(c)
		}
	}
}

// issueCerts makes a CA, a certificate per node and the admin client certificate.
func issueCerts(certDir string, cfgs []*config.Config) error {
	var specs []tlsutil.NodeSpec
	for _, c := range cfgs {
		specs = append(specs, nodeCertSpec(c.Node.ID))
	}
	if _, err := tlsutil.GenerateCluster(certDir, specs, []string{adminClient}, certValidity); err != nil {
		return fmt.Errorf("cluster certificates: %w", err)
	}
	return nil
}

// issueNodeCert issues node id's certificate under the CA in certDir.
func issueNodeCert(certDir string, id uint64) error {
	f := tlsutil.ClusterFileNames(certDir, []tlsutil.NodeSpec{nodeCertSpec(id)}, nil)
	ca, err := tlsutil.LoadCA(f.CA.Cert, f.CA.Key)
	if err != nil {
		return fmt.Errorf("certificate of node %d: %w", id, err)
	}
	kp, err := ca.IssueNode(nodeCertSpec(id), certValidity)
	if err != nil {
		return fmt.Errorf("certificate of node %d: %w", id, err)
	}
	return kp.WriteFiles(f.Nodes[id].Cert, f.Nodes[id].Key)
}
