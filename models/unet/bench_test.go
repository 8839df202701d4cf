package unet_test

import (
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// benchUNet times one UNet run (forward, or forward+backward of mean(out²)
// w.r.t. every weight) with random weights, after one untimed warm-up run
// that also compiles. $GOLCM_BENCH_BACKEND picks the backend config (for
// example "go:ops_sequential"); the default is the one golcm would choose.
func benchUNet(b *testing.B, preset string, batch, size int, backward bool) {
	be, choice, err := backend.Default(os.Getenv("GOLCM_BENCH_BACKEND"))
	if err != nil {
		b.Fatal(err)
	}
	b.Log(backend.Describe(be, choice))
	cfg, _, err := unet.Preset(preset)
	if err != nil {
		b.Fatal(err)
	}
	in := unet.RandomInputs(rand.New(rand.NewPCG(1, 2)), cfg, batch, size)
	weights := nn.RandomWeights(cfg.ParamShapes(), 1, 1)
	opts := nn.ForBackend(choice.Name())
	prog, err := unet.CompileProbe(be, cfg, weights, opts, backward)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := prog.Run(in.Sample, in.Timesteps, in.Context); err != nil {
		b.Fatal(err)
	}
	// cpu-s/op (user+system CPU seconds) is steadier than wall time when
	// other processes share the machine.
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for range b.N {
		if _, err := prog.Run(in.Sample, in.Timesteps, in.Context); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func BenchmarkForwardTiny(b *testing.B)         { benchUNet(b, "tiny", 2, 8, false) }
func BenchmarkForwardBackwardTiny(b *testing.B) { benchUNet(b, "tiny", 2, 8, true) }

func BenchmarkForwardSmall(b *testing.B)         { benchUNet(b, "small", 4, 32, false) }
func BenchmarkForwardBackwardSmall(b *testing.B) { benchUNet(b, "small", 4, 32, true) }

func BenchmarkForwardSD15(b *testing.B) { benchUNet(b, "sd15", 1, 64, false) }
