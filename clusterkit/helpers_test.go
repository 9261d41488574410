package clusterkit

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/georaft/georaft/geo"
)

// repoRoot is where the committed configs live, seen from this package's directory.
const repoRoot = ".."

func defaultMatrix(t *testing.T) geo.Matrix {
	t.Helper()
	m, err := geo.LoadCSV(filepath.Join(repoRoot, "configs/geo/rtt-5-regions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := WaitFor(context.Background(), timeout, what, cond); err != nil {
		t.Fatal(err)
	}
}

// echoServer answers every byte it reads; it stops with the test.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// medianRoundTrip sends n small messages through addr one after another.
func medianRoundTrip(t *testing.T, addr string, n int) time.Duration {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 32)
	var times []time.Duration
	for range n {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2]
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	return a[0]
}
