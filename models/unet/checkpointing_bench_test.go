package unet_test

import (
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// heapObjects is the Go heap's live-and-unswept object bytes, cheap to read
// while a program runs (the pure-Go backend keeps its buffers there).
const heapObjects = "/memory/classes/heap/objects:bytes"

// peakHeap runs f with the collector at GOGC=5 (so garbage does not hide
// the live set) and returns the largest heap-object size seen during it,
// above the size before it, sampled every 100µs.
func peakHeap(f func()) uint64 {
	old := debug.SetGCPercent(5)
	defer debug.SetGCPercent(old)
	runtime.GC()
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	base := s[0].Value.Uint64()
	var peak atomic.Uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		s := []metrics.Sample{{Name: heapObjects}}
		for {
			select {
			case <-done:
				return
			default:
			}
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	f()
	close(done)
	<-stopped
	return max(peak.Load(), base) - base
}

// benchCheckpointing reports the peak heap of one forward+backward run of
// the tiny UNet at 64×64, batch 2, with or without gradient checkpointing on
// the pure-Go backend, as peak-MB: the memory checkpointing is there to
// save. Measured with -benchtime 3x: plain 720 MB, checkpointed 311 MB.
func benchCheckpointing(b *testing.B, checkpointing bool) {
	be, choice, err := backend.Default("go")
	if err != nil {
		b.Fatal(err)
	}
	cfg, _, err := unet.Preset("tiny")
	if err != nil {
		b.Fatal(err)
	}
	in := unet.RandomInputs(rand.New(rand.NewPCG(1, 2)), cfg, 2, 64)
	opts := nn.ForBackend(choice.Name())
	opts.GradientCheckpointing = checkpointing
	prog, err := unet.CompileProbe(be, cfg, nn.RandomWeights(cfg.ParamShapes(), 1, 1), opts, true)
	if err != nil {
		b.Fatal(err)
	}
	run := func() {
		if _, err := prog.Run(in.Sample, in.Timesteps, in.Context); err != nil {
			b.Fatal(err)
		}
	}
	run() // warm-up
	var worst uint64
	b.ResetTimer()
	for range b.N {
		worst = max(worst, peakHeap(run))
	}
	b.ReportMetric(float64(worst)/(1<<20), "peak-MB")
}

func BenchmarkForwardBackwardTinyPeakMemory(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchCheckpointing(b, false) })
	b.Run("checkpointed", func(b *testing.B) { benchCheckpointing(b, true) })
}
