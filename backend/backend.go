// Package backend chooses the GoMLX compute backend golcm runs on and turns
// GoMLX panics into errors at package boundaries.
//
// The choice, in order: $GOMLX_BACKEND when set; XLA (PJRT) when a PJRT plugin
// is already installed on this machine (CUDA preferred over CPU); else GoMLX's
// pure-Go backend. It never downloads a plugin: go-xla's auto-install is
// switched off, because golcm runs on machines without internet and a
// surprise multi-hundred-megabyte download is not what a user asked for.
//
// Depends on github.com/gomlx/compute and, in cgo builds, github.com/gomlx/go-xla
// (its PJRT loader is C); CGO_ENABLED=0 builds have the pure-Go backend only.
package backend

import (
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // registers "go"
)

// goSafeConfig is how golcm runs GoMLX's pure-Go backend: independent ops
// run at once (a distillation step's teacher and student passes overlap),
// with no cap on the worker pool. The cap once guarded against compute
// v0.1.2's pool deadlock, which v0.1.14's fixed executors no longer have;
// it stays because, measured side by side on 2 cores (3 alternating rounds),
// the uncapped pool ran a small-UNet forward 2.10× (1.03–2.55×) as fast
// as the default cap, forward+backward 0.86× (0.47–1.52×).
const goSafeConfig = "go:ops_parallel,parallelism=-1"

// EnvVar is the environment variable that forces a backend, as GoMLX reads it:
// "go", "xla:cpu", "xla:cuda" or "xla:/path/to/pjrt_plugin.so".
const EnvVar = compute.ConfigEnvVar

// Choice describes the backend that was picked and why.
type Choice struct {
	Config string // the configuration passed to GoMLX, e.g. "go" or "xla:cuda"
	Reason string // why this one, for the start-up line
}

// Name is the backend's short name: "go" or "xla".
func (c Choice) Name() string {
	name, _, _ := strings.Cut(c.Config, ":")
	return name
}

// Choose picks a backend configuration without creating it. requested
// overrides everything when not empty (the experiment's run.backend key);
// then $GOMLX_BACKEND; then an installed PJRT plugin; then "go". A plain
// "go" runs as goSafeConfig; "go:<options>" is passed as given.
func Choose(requested string) Choice {
	if requested != "" && requested != "auto" {
		return safeGo(Choice{Config: requested, Reason: "requested"})
	}
	if env, ok := os.LookupEnv(EnvVar); ok && env != "" {
		return safeGo(Choice{Config: env, Reason: "$" + EnvVar})
	}
	plugins := InstalledPlugins()
	for _, preferred := range []string{"cuda", "tpu", "rocm", "cpu"} {
		if slices.Contains(plugins, preferred) {
			return Choice{Config: "xla:" + preferred, Reason: "PJRT plugin " + preferred + " installed"}
		}
	}
	if len(plugins) > 0 {
		return Choice{Config: "xla:" + plugins[0], Reason: "PJRT plugin " + plugins[0] + " installed"}
	}
	return safeGo(Choice{Config: "go", Reason: "no PJRT plugin installed"})
}

func safeGo(c Choice) Choice {
	if c.Config == "go" {
		c.Config = goSafeConfig
	}
	return c
}

var (
	cacheMu sync.Mutex
	cache   = map[string]compute.Backend{}
)

// New creates (or returns the already created) backend for the choice.
// An unknown or unavailable backend is an error that lists what is available.
func New(c Choice) (b compute.Backend, err error) {
	c = safeGo(c)
	if c, err = resolvePlugin(c); err != nil {
		return nil, err
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if b, ok := cache[c.Config]; ok {
		return b, nil
	}
	name := c.Name()
	if !slices.Contains(compute.List(), name) {
		return nil, fmt.Errorf("backend %q (%s): unknown backend name %q; compiled in: %s%s",
			c.Config, c.Reason, name, strings.Join(sorted(compute.List()), ", "), notCompiledIn[name])
	}
	err = Catch(func() {
		var e error
		b, e = compute.NewWithConfig(c.Config)
		if e != nil {
			panic(e)
		}
	})
	if err != nil {
		hint := ""
		if name == "xla" {
			hint = loadHint(c)
		}
		return nil, fmt.Errorf("backend %q (%s) is unavailable%s: %w", c.Config, c.Reason, hint, err)
	}
	cache[c.Config] = b
	return b, nil
}

// Default chooses and creates the backend for requested (may be "").
func Default(requested string) (compute.Backend, Choice, error) {
	c := Choose(requested)
	b, err := New(c)
	return b, c, err
}

// Describe is the one start-up line that says which backend runs.
func Describe(b compute.Backend, c Choice) string {
	d := fmt.Sprintf("backend: %s (%s; %s)", c.Config, b.Description(), c.Reason)
	if c.Name() == "go" {
		d += "; " + GoKernels()
	}
	if info := xlaInfo(b); info != "" {
		d += "; " + info
	}
	return d
}

// GoKernels says which matmul kernels the pure-Go backend was built with.
// They are chosen at build time: Go compiles the SIMD ones only under
// GOEXPERIMENT=simd, which no go.mod setting can turn on.
func GoKernels() string {
	if simdKernels {
		return "SIMD kernels (GOEXPERIMENT=simd)"
	}
	return "portable kernels: build with GOEXPERIMENT=simd for ~3x faster matmuls"
}

// Catch runs fn and returns any panic it raises as an error. GoMLX reports
// shape and graph errors by panicking; library packages call their graph code
// through Catch so callers get errors.
func Catch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			switch v := r.(type) {
			case error:
				err = v
			default:
				err = fmt.Errorf("%v", v)
			}
			if os.Getenv("GOLCM_DEBUG") != "" {
				err = fmt.Errorf("%w\n%s", err, debug.Stack())
			}
		}
	}()
	fn()
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
