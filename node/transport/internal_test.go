package transport

import (
	"testing"
	"time"
)

func TestRetryDelayGrowsWithJitterUpToTheCap(t *testing.T) {
	prevMax := time.Duration(0)
	for failures := 1; failures <= 12; failures++ {
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 200 {
			d := retryDelay(failures)
			lo, hi = min(lo, d), max(hi, d)
		}
		want := min(streamRetryBase<<(failures-1), streamRetryMax)
		if lo < want/2 || hi > want {
			t.Fatalf("after %d failures delays span [%v, %v], want within [%v, %v]", failures, lo, hi, want/2, want)
		}
		if lo == hi {
			t.Fatalf("after %d failures every delay is %v: no jitter", failures, lo)
		}
		if hi < prevMax/2 {
			t.Fatalf("delay shrank after %d failures", failures)
		}
		prevMax = hi
	}
}

func TestRTTIsAnEWMAOfPings(t *testing.T) {
	var p peer
	p.observeRTT(100 * time.Millisecond)
	if got := time.Duration(p.rtt.Load()); got != 100*time.Millisecond {
		t.Fatalf("first sample gives %v, want it as is", got)
	}
	for range 50 {
		p.observeRTT(10 * time.Millisecond)
	}
	got := time.Duration(p.rtt.Load())
	if got < 10*time.Millisecond || got > 11*time.Millisecond {
		t.Fatalf("after many 10ms samples the EWMA is %v", got)
	}
	p.observeRTT(1010 * time.Millisecond) // one outlier moves it by a fifth
	if got := time.Duration(p.rtt.Load()); got < 200*time.Millisecond || got > 215*time.Millisecond {
		t.Fatalf("one 1s outlier moved the EWMA to %v, want about 210ms", got)
	}
	if p.rttSamples.Load() != 52 {
		t.Fatalf("%d samples counted, want 52", p.rttSamples.Load())
	}
}

func TestRateLimits(t *testing.T) {
	var r rateLimit
	if !r.allow(0, time.Second) || r.allow(500*time.Millisecond, time.Second) || !r.allow(1001*time.Millisecond, time.Second) {
		t.Fatal("rateLimit does not let exactly one event per interval through")
	}
	var k keyedRateLimit
	if !k.allow("a", 0, time.Second) || !k.allow("b", 0, time.Second) || k.allow("a", time.Millisecond, time.Second) {
		t.Fatal("keyedRateLimit does not limit per key")
	}
	for i := range maxRateLimitKeys + 10 {
		k.allow(string(rune(i)), time.Minute, time.Second)
	}
	if len(k.last) > maxRateLimitKeys {
		t.Fatalf("keyedRateLimit holds %d keys, bound is %d", len(k.last), maxRateLimitKeys)
	}
}
