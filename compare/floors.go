package compare

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/georaft/georaft/lab"
)

// Floors are what no store on this machine can beat: one fsync on the data dirs' disk,
// and one empty gRPC call over loopback.
type Floors struct {
	FsyncP50    time.Duration
	FsyncDir    string
	GRPCRTTP50  time.Duration
	GRPCRTTP99  time.Duration
	GRPCSamples int
}

// MeasureFloors probes fsync in dir (lab.ProbeFsync: 4 KiB write + fsync, p50) and the
// round trip of an empty unary gRPC call to a server in this process over loopback TCP.
func MeasureFloors(ctx context.Context, dir string) (Floors, error) {
	f := Floors{FsyncDir: dir}
	var err error
	if f.FsyncP50, err = lab.ProbeFsync(dir, 100); err != nil {
		return f, err
	}
	samples, err := GRPCRoundTrips(ctx, 200, 2000)
	if err != nil {
		return f, err
	}
	f.GRPCSamples = len(samples)
	f.GRPCRTTP50, f.GRPCRTTP99 = percentile(samples, 50), percentile(samples, 99)
	return f, nil
}

const pingMethod = "/georaft.compare.Floor/Ping"

// floorService is one unary method that echoes google.protobuf.Empty: the smallest call
// gRPC can make, with no application work behind it.
var floorService = grpc.ServiceDesc{
	ServiceName: "georaft.compare.Floor",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Ping",
		Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			return in, nil
		},
	}},
}

// GRPCRoundTrips makes warmup unrecorded calls and then n recorded ones, one at a time,
// and returns their latencies sorted.
func GRPCRoundTrips(ctx context.Context, warmup, n int) ([]time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("grpc floor: listen: %w", err)
	}
	srv := grpc.NewServer()
	srv.RegisterService(&floorService, struct{}{})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("grpc floor: dial %s: %w", ln.Addr(), err)
	}
	defer conn.Close()
	out := make([]time.Duration, 0, n)
	for i := range warmup + n {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		err := conn.Invoke(callCtx, pingMethod, &emptypb.Empty{}, new(emptypb.Empty))
		d := time.Since(start)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("grpc floor: call %d: %w", i, err)
		}
		if i >= warmup {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out, nil
}

// percentile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}
