package clip

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golcm/golcm/models/safetensors"
)

// writeEncoder writes a tiny text encoder folder: its config and zero
// weights following ParamShapes, plus extra tensors.
func writeEncoder(t *testing.T, config string, extra ...*safetensors.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(config), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	list := extra
	for name, dims := range cfg.ParamShapes() {
		n := 1
		for _, d := range dims {
			n *= d
		}
		list = append(list, safetensors.FromFloat32(name, dims, make([]float32, n)))
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), list, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

const tinyConfig = `{"architectures": ["CLIPTextModel"], "vocab_size": 10, "hidden_size": 8,
	"intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 4, "eos_token_id": 9}`

// TestLoadIgnoresPositionIDsBuffer: checkpoints saved before transformers
// 4.31 carry the int64 position_ids buffer; it loads and is dropped.
func TestLoadIgnoresPositionIDsBuffer(t *testing.T) {
	dir := writeEncoder(t, tinyConfig, safetensors.FromInt64(positionIDsBuffer, []int{1, 4}, []int64{0, 1, 2, 3}))
	m, err := Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Weights.Get(positionIDsBuffer); ok {
		t.Errorf("%s was kept as a weight", positionIDsBuffer)
	}
}

// TestLoadReportsUnexpectedProjection: a text_projection in a plain
// CLIPTextModel's checkpoint is an error naming the weight.
func TestLoadReportsUnexpectedProjection(t *testing.T) {
	dir := writeEncoder(t, tinyConfig, safetensors.FromFloat32("text_projection.weight", []int{4, 8}, make([]float32, 32)))
	_, err := Load(dir, "")
	if err == nil || !strings.Contains(err.Error(), "unexpected weights: text_projection.weight") {
		t.Errorf("got %v, want an unexpected text_projection.weight", err)
	}
}
