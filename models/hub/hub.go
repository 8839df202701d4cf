// Package hub finds diffusers model folders and the files inside them: a local folder or a model
// id resolved in the Hugging Face cache (the layout huggingface_hub writes:
// models--org--name/{refs,snapshots}), the pipeline's model_index.json, component folders, their
// config.json and weight files (safetensors, single or sharded, optionally the fp16 variant).
//
// It never downloads anything; a missing model gives an error saying where it looked and how to
// fetch it. It depends only on the Go standard library.
package hub

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CacheDir is the Hugging Face hub cache folder, following huggingface_hub's constants:
// $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE (legacy), else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
func CacheDir() string {
	for _, env := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if d := os.Getenv(env); d != "" {
			return expandHome(d)
		}
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		return filepath.Join(expandHome(d), "hub")
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(expandHome(d), "huggingface", "hub")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".cache", "huggingface", "hub")
	}
	return filepath.Join(home, ".cache", "huggingface", "hub")
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// Resolve turns a local folder or a Hugging Face model id ("org/name") into a folder. An existing
// folder is returned as is. Otherwise the id is looked up in CacheDir(): revision ("" means "main")
// is read from refs/<revision> to get a commit hash, whose snapshots/<hash> folder is returned; a
// revision that is itself a commit hash present under snapshots works too.
func Resolve(nameOrPath, revision string) (string, error) {
	if st, err := os.Stat(nameOrPath); err == nil && st.IsDir() {
		return nameOrPath, nil
	}
	if revision == "" {
		revision = "main"
	}
	looked := []string{fmt.Sprintf("%s: not a local folder", nameOrPath)}
	notFound := func() error {
		return fmt.Errorf("model %q (revision %s) not found; looked at:\n  %s\nDownload it with `huggingface-cli download %s` (set HF_HUB_CACHE or HF_HOME if your cache is elsewhere), or pass a local diffusers folder",
			nameOrPath, revision, strings.Join(looked, "\n  "), downloadArgs(nameOrPath, revision))
	}
	if !validRepoID(nameOrPath) {
		looked = append(looked, fmt.Sprintf("%q is not a Hugging Face model id (want org/name)", nameOrPath))
		return "", notFound()
	}
	if !validRevision(revision) {
		return "", fmt.Errorf("model %q: invalid revision %q", nameOrPath, revision)
	}
	repo := filepath.Join(CacheDir(), "models--"+strings.ReplaceAll(nameOrPath, "/", "--"))
	if st, err := os.Stat(repo); err != nil || !st.IsDir() {
		looked = append(looked, repo+": no such folder in the Hugging Face cache")
		return "", notFound()
	}
	ref := filepath.Join(repo, "refs", filepath.FromSlash(revision))
	if b, err := os.ReadFile(ref); err == nil {
		hash := strings.TrimSpace(string(b))
		snap := filepath.Join(repo, "snapshots", hash)
		if validRevision(hash) && !strings.Contains(hash, "/") && isDir(snap) {
			return snap, nil
		}
		looked = append(looked, fmt.Sprintf("%s: names commit %q, but %s is missing", ref, hash, snap))
	} else {
		looked = append(looked, ref+": no such ref")
	}
	if !strings.Contains(revision, "/") {
		snap := filepath.Join(repo, "snapshots", revision)
		if isDir(snap) {
			return snap, nil
		}
		looked = append(looked, snap+": no such snapshot")
	}
	return "", notFound()
}

func downloadArgs(name, revision string) string {
	if revision == "main" {
		return name
	}
	return name + " --revision " + revision
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// validRepoID accepts "name" or "org/name" whose parts are non-empty and cannot escape the cache.
func validRepoID(id string) bool {
	parts := strings.Split(id, "/")
	if len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, `\`) {
			return false
		}
	}
	return true
}

// validRevision accepts branch, tag and hash names (which may contain "/", like "refs/pr/1") that
// stay inside the cache folder.
func validRevision(rev string) bool {
	if rev == "" || strings.HasPrefix(rev, "/") || strings.Contains(rev, `\`) {
		return false
	}
	for _, p := range strings.Split(rev, "/") {
		if p == "" || p == "." || p == ".." {
			return false
		}
	}
	return true
}

// ModelIndex is a pipeline's model_index.json.
type ModelIndex struct {
	Path             string
	ClassName        string               // "_class_name", e.g. "StableDiffusionPipeline"
	DiffusersVersion string               // "_diffusers_version"
	Components       map[string]Component // present components; [null, null] entries are left out
	// Options holds the other keys (e.g. "requires_safety_checker", "force_zeros_for_empty_prompt").
	Options map[string]json.RawMessage
}

// Component is one model_index.json entry: ["library", "ClassName"].
type Component struct {
	Library, Class string
}

// ComponentNames lists the present components, sorted.
func (m *ModelIndex) ComponentNames() []string {
	names := make([]string, 0, len(m.Components))
	for n := range m.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ReadModelIndex reads dir/model_index.json.
func ReadModelIndex(dir string) (*ModelIndex, error) {
	path := filepath.Join(dir, "model_index.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model index: %w (is %s a diffusers pipeline folder?)", err, dir)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("model index %s: %w", path, err)
	}
	m := &ModelIndex{Path: path, Components: map[string]Component{}, Options: map[string]json.RawMessage{}}
	for key, v := range raw {
		switch {
		case key == "_class_name":
			if err := json.Unmarshal(v, &m.ClassName); err != nil {
				return nil, fmt.Errorf("model index %s: _class_name: %w", path, err)
			}
		case key == "_diffusers_version":
			if err := json.Unmarshal(v, &m.DiffusersVersion); err != nil {
				return nil, fmt.Errorf("model index %s: _diffusers_version: %w", path, err)
			}
		case strings.HasPrefix(key, "_"):
			m.Options[key] = v
		default:
			var pair []*string
			if json.Unmarshal(v, &pair) != nil {
				m.Options[key] = v // not a component: a flag such as requires_safety_checker
				continue
			}
			if len(pair) != 2 {
				return nil, fmt.Errorf("model index %s: component %q is %s, want [library, class]", path, key, v)
			}
			if pair[0] == nil || pair[1] == nil {
				continue // absent component, e.g. "safety_checker": [null, null]
			}
			m.Components[key] = Component{Library: *pair[0], Class: *pair[1]}
		}
	}
	if m.ClassName == "" {
		return nil, fmt.Errorf("model index %s: no _class_name", path)
	}
	return m, nil
}

// ComponentDir is dir/component, checked to exist; the error lists the folders that do.
func ComponentDir(dir, component string) (string, error) {
	p := filepath.Join(dir, component)
	if isDir(p) {
		return p, nil
	}
	entries, _ := os.ReadDir(dir)
	var have []string
	for _, e := range entries {
		if e.IsDir() {
			have = append(have, e.Name())
		}
	}
	return "", fmt.Errorf("component %q: no folder %s (folders in %s: %s)", component, p, dir, listOrNone(have))
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
