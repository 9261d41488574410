package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ServerConfig is the TLS configuration of a georaft listener: it presents cert/key and, with
// requireClientCert, accepts only clients whose certificate chains to the CA in caFile. With
// requireClientCert false a client certificate is still verified when one is offered (so
// PeerIdentity works), but clients without one are let in: the KVService may allow that,
// PeerService never does (the transport checks the identity itself).
func ServerConfig(caFile, certFile, keyFile string, requireClientCert bool) (*tls.Config, error) {
	pool, err := LoadCertPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("server TLS config: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server TLS config: load key pair %s, %s: %w", certFile, keyFile, err)
	}
	auth := tls.VerifyClientCertIfGiven
	if requireClientCert {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   auth,
	}, nil
}

// ClientConfig is the TLS configuration to dial a georaft node: it trusts only the CA in
// caFile and presents cert/key when both are given (certFile and keyFile empty: no client
// certificate). serverName is the name checked in the server's certificate; empty means the
// host of the dialled address (gRPC fills it in). The peer transport overrides it per peer
// with NodeServerName.
func ClientConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	pool, err := LoadCertPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("client TLS config: %w", err)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		ServerName: serverName,
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client TLS config: load key pair %s, %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, fmt.Errorf("client TLS config: cert file %q and key file %q must be given together", certFile, keyFile)
	}
	return cfg, nil
}

// LoadCertPool reads the CA certificates in a PEM file.
func LoadCertPool(caFile string) (*x509.CertPool, error) {
	certs, err := ReadCertificates(caFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// PeerIdentity tells who is at the other end of a verified TLS connection: a node and its
// id, or a client and its name. It fails if the other end showed no certificate, if the
// chain was not verified, or if the certificate carries no well-formed georaft identity.
func PeerIdentity(state tls.ConnectionState) (kind Kind, id uint64, name string, err error) {
	if len(state.PeerCertificates) == 0 {
		return KindUnknown, 0, "", errors.New("peer identity: no certificate presented")
	}
	if len(state.VerifiedChains) == 0 {
		return KindUnknown, 0, "", errors.New("peer identity: certificate chain was not verified")
	}
	return CertIdentity(state.PeerCertificates[0])
}

// CertIdentity reads the georaft identity URI SAN of cert. It does not verify the chain.
func CertIdentity(cert *x509.Certificate) (kind Kind, id uint64, name string, err error) {
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == URIScheme {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return KindUnknown, 0, "", fmt.Errorf("certificate %q: want exactly one %s:// URI SAN, found %d",
			cert.Subject.CommonName, URIScheme, len(found))
	}
	u := found[0]
	value, ok := strings.CutPrefix(u.Path, "/")
	if !ok || value == "" || strings.Contains(value, "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return KindUnknown, 0, "", fmt.Errorf("certificate %q: malformed identity %s", cert.Subject.CommonName, u)
	}
	switch u.Host {
	case "node":
		id, err := strconv.ParseUint(value, 10, 64)
		if err != nil || id == 0 {
			return KindUnknown, 0, "", fmt.Errorf("certificate %q: identity %s: node id must be a positive integer",
				cert.Subject.CommonName, u)
		}
		if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) ||
			!slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
			return KindUnknown, 0, "", fmt.Errorf("certificate %q: node certificate must allow both server and client authentication",
				cert.Subject.CommonName)
		}
		return KindNode, id, "", nil
	case "client":
		if err := ValidateClientName(value); err != nil {
			return KindUnknown, 0, "", fmt.Errorf("certificate %q: identity %s: %w", cert.Subject.CommonName, u, err)
		}
		return KindClient, 0, value, nil
	}
	return KindUnknown, 0, "", fmt.Errorf("certificate %q: identity %s: unknown kind %q (want node or client)",
		cert.Subject.CommonName, u, u.Host)
}
