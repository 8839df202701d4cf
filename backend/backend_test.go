package backend

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

func TestChooseOrder(t *testing.T) {
	t.Setenv(EnvVar, "go")
	if c := Choose(""); c.Config != goSafeConfig || c.Reason != "$"+EnvVar {
		t.Errorf("with $%s=go: %+v", EnvVar, c)
	}
	if c := Choose("xla:cuda"); c.Config != "xla:cuda" || c.Name() != "xla" {
		t.Errorf("requested xla:cuda: %+v", c)
	}
	t.Setenv(EnvVar, "")
	c := Choose("auto")
	if len(InstalledPlugins()) == 0 && c.Name() != "go" {
		t.Errorf("no PJRT plugin installed, got %+v, want go", c)
	}
	t.Logf("auto choice here: %+v (plugins %v)", c, InstalledPlugins())
}

func TestUnavailableBackendIsAnError(t *testing.T) {
	_, err := New(Choice{Config: "nosuch", Reason: "requested"})
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "go") {
		t.Fatalf("err = %v, want an error naming the backend and listing the compiled-in ones", err)
	}
	if len(InstalledPlugins()) == 0 {
		_, err := New(Choice{Config: "xla:cpu", Reason: "requested"})
		// A cgo build says it never downloads a plugin; a CGO_ENABLED=0
		// build says XLA needs cgo.
		if err == nil || !(strings.Contains(err.Error(), "never downloads") || strings.Contains(err.Error(), "CGO_ENABLED=1")) {
			t.Fatalf("xla without a plugin: err = %v, want a clear error", err)
		}
		t.Log(err)
	}
	b, err := New(Choice{Config: "go"})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(Describe(b, Choice{Config: "go", Reason: "test"}))
}

func TestCatchTurnsPanicsIntoErrors(t *testing.T) {
	want := errors.New("boom")
	if err := Catch(func() { panic(want) }); !errors.Is(err, want) {
		t.Errorf("Catch(panic(err)) = %v", err)
	}
	if err := Catch(func() { panic("text") }); err == nil || err.Error() != "text" {
		t.Errorf("Catch(panic(string)) = %v", err)
	}
	if err := Catch(func() {}); err != nil {
		t.Errorf("Catch(no panic) = %v", err)
	}
}

// TestGoBackendIndependentMatMulsFinish runs a graph of independent 256×256 matmuls, enough to fill
// the Go backend's worker pool with nodes that each fan out over the pool. With compute v0.1.2's
// default pool ("go:ops_parallel") the first run hung on a 2-core machine (golcm's training hangs);
// it guards golcm's configuration (goSafeConfig) against that coming back.
func TestGoBackendIndependentMatMulsFinish(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) // a 4-slot pool on any machine
	b, err := compute.NewWithConfig(goSafeConfig)
	if err != nil {
		t.Fatal(err)
	}
	const k, n = 8, 256 // k ≥ the pool's 2×GOMAXPROCS slots
	exec, err := graph.NewExec(b, func(xs []*graph.Node) *graph.Node {
		sum := graph.ReduceAllSum(graph.MatMul(xs[0], xs[1]))
		for i := 1; i < k; i++ {
			sum = graph.Add(sum, graph.ReduceAllSum(graph.MatMul(xs[2*i], xs[2*i+1])))
		}
		return sum
	})
	if err != nil {
		t.Fatal(err)
	}
	args := make([]any, 2*k)
	for i := range args {
		args[i] = tensors.FromShape(shapes.Make(dtypes.Float32, n, n))
	}
	for run := range 10 {
		done := make(chan error, 1)
		go func() { _, err := exec.Exec(args...); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("run %d of %d independent matmuls did not finish in 60 s: the Go backend's worker pool is deadlocked", run, k)
		}
	}
}
