package lcm

import (
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golcm/golcm/internal/golden"
)

// TestMethodDoesNotImportPipelines: lcm, the method, depends on no pipeline,
// sampler or experiment package, directly or through another golcm package
// (arrows only point down: pipelines import lcm, never the reverse).
func TestMethodDoesNotImportPipelines(t *testing.T) {
	const module = "github.com/golcm/golcm/"
	root := golden.RepoRoot()
	if root == "" {
		t.Fatal("no go.mod above the working directory")
	}
	forbidden := []string{module + "models/pipeline", module + "sampling", module + "experiments"}
	seen := map[string][]string{} // package -> the import chain that reached it
	queue := []string{module + "lcm"}
	seen[queue[0]] = []string{queue[0]}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		pkg, err := build.ImportDir(filepath.Join(root, strings.TrimPrefix(path, module)), 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, module) || seen[imp] != nil {
				continue
			}
			seen[imp] = append(slices.Clone(seen[path]), imp)
			for _, f := range forbidden {
				if imp == f || strings.HasPrefix(imp, f+"/") {
					t.Errorf("lcm imports %s: %s", imp, strings.Join(seen[imp], " → "))
				}
			}
			queue = append(queue, imp)
		}
	}
	if seen[module+"train"] == nil {
		t.Errorf("the walk never reached package train; imports seen: %v", seen)
	}
}
