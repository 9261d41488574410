//go:build !georaft_testhooks

package node

func clockRateFromTestHook() float64 { return 1 }
