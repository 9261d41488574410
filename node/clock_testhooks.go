//go:build georaft_testhooks

package node

import (
	"fmt"
	"os"
	"strconv"
)

// ClockRateEnv skews this node's clock in builds tagged georaft_testhooks, so the fault
// harness can run real processes whose clocks drift within the configured bound. Production
// builds do not compile this file.
const ClockRateEnv = "GEORAFT_TEST_CLOCK_RATE"

func clockRateFromTestHook() float64 {
	s := os.Getenv(ClockRateEnv)
	if s == "" {
		return 1
	}
	rate, err := strconv.ParseFloat(s, 64)
	if err != nil || rate <= 0 {
		fmt.Fprintf(os.Stderr, "georaftd: ignoring %s=%q: not a positive number\n", ClockRateEnv, s)
		return 1
	}
	return rate
}
