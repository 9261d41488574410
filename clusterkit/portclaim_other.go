//go:build !unix

package clusterkit

// claimPort reserves nothing across processes where file locks are not available: ports are
// then only unique within this process.
func claimPort(string) bool { return true }
