// Package tlsutil makes and loads georaft's TLS material: one CA per cluster, node
// certificates (server and client usage, used between peers and by the client service) and
// client certificates (client usage only, for the CLI and applications).
//
// Every certificate names what it is in a URI SAN, so a node can tell a peer from a client
// after the chain is verified:
//
//	georaft://node/3       node 3
//	georaft://client/NAME  client NAME
//
// Node certificates also carry the DNS SAN NodeServerName(id) ("node-3.georaft"), so a peer
// can verify "this is node 3" whatever address it dialled (a proxy, in the geo lab).
package tlsutil

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// URIScheme is the scheme of the identity URI SAN in every georaft certificate.
const URIScheme = "georaft"

// clockSkewAllowance back-dates NotBefore so a certificate made on one machine is valid at
// once on a machine whose clock is a little behind.
const clockSkewAllowance = time.Hour

// Kind says which sort of party a certificate identifies.
type Kind uint8

const (
	// KindUnknown is never returned with a nil error.
	KindUnknown Kind = iota
	// KindNode is a georaft node: it may join PeerService.
	KindNode
	// KindClient is an application or the CLI: KVService only.
	KindClient
)

func (k Kind) String() string {
	switch k {
	case KindNode:
		return "node"
	case KindClient:
		return "client"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// NodeSpec describes one node's certificate: its id and the host names and IP addresses it
// is reached at (each becomes a DNS or IP SAN).
type NodeSpec struct {
	ID    uint64
	Hosts []string
}

// NodeURI is the identity URI SAN of node id.
func NodeURI(id uint64) *url.URL {
	return &url.URL{Scheme: URIScheme, Host: "node", Path: "/" + strconv.FormatUint(id, 10)}
}

// ClientURI is the identity URI SAN of client name.
func ClientURI(name string) *url.URL {
	return &url.URL{Scheme: URIScheme, Host: "client", Path: "/" + name}
}

// NodeServerName is the DNS SAN every certificate of node id carries. A peer sets it as the
// TLS server name when dialling node id, so verification checks the node's identity rather
// than the dialled address.
func NodeServerName(id uint64) string {
	return "node-" + strconv.FormatUint(id, 10) + ".georaft"
}

var clientNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateClientName reports whether name can be used for a client certificate (and its
// file name): 1–64 letters, digits, '.', '_' or '-', not starting with a punctuation mark.
func ValidateClientName(name string) error {
	if !clientNameRE.MatchString(name) {
		return fmt.Errorf("client name %q: want 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit", name)
	}
	return nil
}

// CA is a cluster's certificate authority: it signs node and client certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// KeyPair is a PEM certificate and its PEM (PKCS #8) private key.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA makes a self-signed ECDSA P-256 CA valid for validity from now.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("new CA %q: validity must be positive, got %v", commonName, validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: generate key: %w", commonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	skid, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"georaft"}},
		NotBefore:             now.Add(-clockSkewAllowance),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaf certificates only, never another CA.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		SubjectKeyId:   skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: sign: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: parse what was signed: %w", commonName, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA written by WriteFiles or GenerateCluster, to issue more certificates.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certs, err := ReadCertificates(certFile)
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, fmt.Errorf("load CA %s: certificate is not a CA", certFile)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA key: %w", err)
	}
	key, err := parseECKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA key %s: %w", keyFile, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("load CA: key %s does not belong to certificate %s", keyFile, certFile)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM is the CA certificate, PEM encoded: what every party trusts.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPair is the CA certificate and key, PEM encoded.
func (ca *CA) KeyPair() (*KeyPair, error) {
	keyPEM, err := encodeKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	return &KeyPair{CertPEM: ca.CertPEM(), KeyPEM: keyPEM}, nil
}

// IssueNode signs a certificate for node spec.ID usable as both TLS server and client.
func (ca *CA) IssueNode(spec NodeSpec, validity time.Duration) (*KeyPair, error) {
	if spec.ID == 0 {
		return nil, errors.New("issue node certificate: node id must not be 0")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "georaft node " + strconv.FormatUint(spec.ID, 10), Organization: []string{"georaft"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{NodeURI(spec.ID)},
		DNSNames:    []string{NodeServerName(spec.ID)},
	}
	for _, host := range spec.Hosts {
		host = strings.TrimSpace(host)
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if err := validateDNSName(host); err != nil {
			return nil, fmt.Errorf("issue certificate for node %d: host %q: %w", spec.ID, host, err)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	kp, err := ca.issue(tmpl, validity)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for node %d: %w", spec.ID, err)
	}
	return kp, nil
}

// IssueClient signs a client-only certificate for name.
func (ca *CA) IssueClient(name string, validity time.Duration) (*KeyPair, error) {
	if err := ValidateClientName(name); err != nil {
		return nil, fmt.Errorf("issue client certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "georaft client " + name, Organization: []string{"georaft"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{ClientURI(name)},
	}
	kp, err := ca.issue(tmpl, validity)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for client %q: %w", name, err)
	}
	return kp, nil
}

func (ca *CA) issue(tmpl *x509.Certificate, validity time.Duration) (*KeyPair, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("validity must be positive, got %v", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkewAllowance)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		// A leaf that outlives its CA would fail verification anyway; say so now.
		return nil, fmt.Errorf("validity %v ends after the CA expires (%s)", validity, ca.Cert.NotAfter.Format(time.RFC3339))
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.SubjectKeyId = skid
	tmpl.AuthorityKeyId = ca.Cert.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  keyPEM,
	}, nil
}

// WriteFiles writes the certificate (mode 0644) and the key (mode 0600). It refuses to
// overwrite either file, so a CA key is never lost by accident.
func (kp *KeyPair) WriteFiles(certFile, keyFile string) error {
	if err := writeNewFile(certFile, kp.CertPEM, 0o644); err != nil {
		return err
	}
	return writeNewFile(keyFile, kp.KeyPEM, 0o600)
}

// ClusterFiles lists the files GenerateCluster wrote.
type ClusterFiles struct {
	CA      Files
	Nodes   map[uint64]Files
	Clients map[string]Files
}

// Files is one certificate and its key.
type Files struct {
	Cert, Key string
}

// ClusterFileNames are the paths GenerateCluster uses under dir.
func ClusterFileNames(dir string, nodes []NodeSpec, clients []string) *ClusterFiles {
	cf := &ClusterFiles{
		CA:      Files{Cert: filepath.Join(dir, "ca.crt"), Key: filepath.Join(dir, "ca.key")},
		Nodes:   make(map[uint64]Files, len(nodes)),
		Clients: make(map[string]Files, len(clients)),
	}
	for _, n := range nodes {
		base := filepath.Join(dir, fmt.Sprintf("node-%d", n.ID))
		cf.Nodes[n.ID] = Files{Cert: base + ".crt", Key: base + ".key"}
	}
	for _, c := range clients {
		base := filepath.Join(dir, "client-"+c)
		cf.Clients[c] = Files{Cert: base + ".crt", Key: base + ".key"}
	}
	return cf
}

// CAValidity is how long GenerateCluster's CA lasts: far longer than the certificates it
// signs, so that RenewCluster can reissue those under the same CA, one node at a time.
const CAValidity = 10 * 365 * 24 * time.Hour

// GenerateCluster makes a new CA and a certificate for every node and client, written to
// dir as ca.crt/ca.key, node-ID.crt/.key and client-NAME.crt/.key (keys mode 0600). It checks
// every input and that none of the files exists before writing anything.
func GenerateCluster(dir string, nodes []NodeSpec, clients []string, validity time.Duration) (*ClusterFiles, error) {
	files, err := checkClusterInputs(dir, nodes, clients, validity)
	if err != nil {
		return nil, fmt.Errorf("generate cluster certificates: %w", err)
	}
	all := []string{files.CA.Cert, files.CA.Key}
	for _, f := range files.Nodes {
		all = append(all, f.Cert, f.Key)
	}
	for _, f := range files.Clients {
		all = append(all, f.Cert, f.Key)
	}
	for _, path := range all {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("generate cluster certificates: %s already exists; refusing to overwrite", path)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("generate cluster certificates: %w", err)
		}
	}

	ca, err := NewCA("georaft CA", max(CAValidity, validity+time.Hour))
	if err != nil {
		return nil, fmt.Errorf("generate cluster certificates: %w", err)
	}
	pairs, err := issueLeaves(ca, files, nodes, clients, validity)
	if err != nil {
		return nil, fmt.Errorf("generate cluster certificates: %w", err)
	}
	caPair, err := ca.KeyPair()
	if err != nil {
		return nil, fmt.Errorf("generate cluster certificates: %w", err)
	}
	pairs[files.CA] = caPair
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("generate cluster certificates: %w", err)
	}
	for f, kp := range pairs {
		if err := kp.WriteFiles(f.Cert, f.Key); err != nil {
			return nil, fmt.Errorf("generate cluster certificates: %w", err)
		}
	}
	return files, nil
}

// RenewCluster issues new certificates for every node and client under the CA GenerateCluster
// left in dir, replacing their files; nodes and clients dir does not hold yet are added. The
// CA stays, so nodes holding renewed certificates and nodes still holding the old ones trust
// each other: a renewal can roll out one node at a time. Every new file is written beside its
// target first, then renamed over it; a crash among the renames can leave a new key beside
// an old certificate, and running the renewal again repairs that.
func RenewCluster(dir string, nodes []NodeSpec, clients []string, validity time.Duration) (*ClusterFiles, error) {
	files, err := checkClusterInputs(dir, nodes, clients, validity)
	if err != nil {
		return nil, fmt.Errorf("renew cluster certificates: %w", err)
	}
	ca, err := LoadCA(files.CA.Cert, files.CA.Key)
	if err != nil {
		return nil, fmt.Errorf("renew cluster certificates: %w", err)
	}
	if end := time.Now().Add(validity); end.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("renew cluster certificates: the CA in %s expires %s, before certificates valid for %v would; "+
			"issue a new CA into an empty directory instead", files.CA.Cert, ca.Cert.NotAfter.Format(time.RFC3339), validity)
	}
	pairs, err := issueLeaves(ca, files, nodes, clients, validity)
	if err != nil {
		return nil, fmt.Errorf("renew cluster certificates: %w", err)
	}
	var staged []string
	for f, kp := range pairs {
		for _, w := range []struct {
			path string
			data []byte
			perm os.FileMode
		}{{f.Key, kp.KeyPEM, 0o600}, {f.Cert, kp.CertPEM, 0o644}} {
			if err := stageFile(w.path, w.data, w.perm); err != nil {
				return nil, fmt.Errorf("renew cluster certificates: %w", err)
			}
			staged = append(staged, w.path)
		}
	}
	for _, path := range staged {
		if err := os.Rename(path+stagedSuffix, path); err != nil {
			return nil, fmt.Errorf("renew cluster certificates: replace %s: %w", path, err)
		}
	}
	return files, nil
}

// checkClusterInputs checks what GenerateCluster and RenewCluster are asked for, and names
// the files they write.
func checkClusterInputs(dir string, nodes []NodeSpec, clients []string, validity time.Duration) (*ClusterFiles, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("validity must be positive, got %v", validity)
	}
	if len(nodes) == 0 {
		return nil, errors.New("no nodes")
	}
	seenNodes := make(map[uint64]bool, len(nodes))
	for _, n := range nodes {
		if n.ID == 0 {
			return nil, errors.New("node id must not be 0")
		}
		if seenNodes[n.ID] {
			return nil, fmt.Errorf("node %d listed twice", n.ID)
		}
		seenNodes[n.ID] = true
	}
	seenClients := make(map[string]bool, len(clients))
	for _, c := range clients {
		if err := ValidateClientName(c); err != nil {
			return nil, err
		}
		if seenClients[c] {
			return nil, fmt.Errorf("client %q listed twice", c)
		}
		seenClients[c] = true
	}
	return ClusterFileNames(dir, nodes, clients), nil
}

// issueLeaves signs a certificate for every node and client, before anything is written.
func issueLeaves(ca *CA, files *ClusterFiles, nodes []NodeSpec, clients []string, validity time.Duration) (map[Files]*KeyPair, error) {
	pairs := make(map[Files]*KeyPair, len(nodes)+len(clients)+1)
	for _, n := range nodes {
		kp, err := ca.IssueNode(n, validity)
		if err != nil {
			return nil, err
		}
		pairs[files.Nodes[n.ID]] = kp
	}
	for _, c := range clients {
		kp, err := ca.IssueClient(c, validity)
		if err != nil {
			return nil, err
		}
		pairs[files.Clients[c]] = kp
	}
	return pairs, nil
}

// stagedSuffix names the file RenewCluster writes beside the one it will replace.
const stagedSuffix = ".new"

// stageFile writes data beside path, replacing what an interrupted run left there.
func stageFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + stagedSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return writeNewFile(tmp, data, perm)
}

func writeNewFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("random serial number: %w", err)
	}
	return serial, nil
}

func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	// RFC 5280 §4.2.1.2 allows any method that gives a unique value; a truncated SHA-256
	// of the key avoids SHA-1. Leaves need it set by hand so AuthorityKeyId chains work.
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseECKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS #8 key: %w", err)
		}
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, want ECDSA", key)
		}
		return ec, nil
	case "EC PRIVATE KEY":
		key, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse EC key: %w", err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("PEM block is %q, want PRIVATE KEY", block.Type)
}

// NotAfter is when the first certificate of a PEM file to expire does.
func NotAfter(path string) (time.Time, error) {
	certs, err := ReadCertificates(path)
	if err != nil {
		return time.Time{}, err
	}
	first := certs[0].NotAfter
	for _, c := range certs[1:] {
		if c.NotAfter.Before(first) {
			first = c.NotAfter
		}
	}
	return first, nil
}

// ReadCertificates reads every CERTIFICATE block of a PEM file; there must be at least one.
func ReadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load certificates: %w", err)
	}
	var certs []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("load certificates %s: trailing data is not PEM", path)
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("load certificates %s: %w", path, err)
		}
		certs = append(certs, cert)
		rest = bytes.TrimSpace(rest)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("load certificates %s: no CERTIFICATE block", path)
	}
	return certs, nil
}

var dnsLabelRE = regexp.MustCompile(`^(\*|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)$`)

func validateDNSName(name string) error {
	if name == "" {
		return errors.New("empty host name")
	}
	if len(name) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	for i, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if !dnsLabelRE.MatchString(label) || (label == "*" && i != 0) {
			return fmt.Errorf("not a DNS name or IP address (label %q)", label)
		}
	}
	return nil
}
