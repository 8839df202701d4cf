package clip_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/models/clip"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/safetensors"
	"github.com/golcm/golcm/models/tokenizer"
)

// ids returns rows of a stored [B, L] token-id entry as an int64 tensor
// (every row when rows is empty).
func ids(t *testing.T, s *golden.Sidecar, entry string, rows ...int) *tensors.Tensor {
	t.Helper()
	all, shape := s.Int64(t, entry)
	L := shape[1]
	if len(rows) == 0 {
		return tensors.FromFlatDataAndDimensions(all, shape...)
	}
	var out []int64
	for _, r := range rows {
		out = append(out, all[r*L:(r+1)*L]...)
	}
	return tensors.FromFlatDataAndDimensions(out, len(rows), L)
}

func load(t *testing.T, dir string) *clip.Model {
	t.Helper()
	m, err := clip.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func encode(t *testing.T, b compute.Backend, m *clip.Model, x *tensors.Tensor) *clip.HostOutputs {
	t.Helper()
	r := clip.NewRunner(b, m, nn.Options{})
	t.Cleanup(r.Finalize)
	o, err := r.Encode(x)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func check(t *testing.T, s *golden.Sidecar, entry string, x *tensors.Tensor) {
	t.Helper()
	got, dims := golden.Host(t, x)
	s.CheckFloat32(t, entry, got, dims)
}

// checkAs checks an entry stored without a tolerance (an input of a later
// stage) with the tolerance of the entry that measured the same computation.
func checkAs(t *testing.T, s *golden.Sidecar, entry, tolFrom string, x *tensors.Tensor) {
	t.Helper()
	got, dims := golden.Host(t, x)
	s.CheckFloat32Tol(t, entry, got, dims, s.Entries[tolFrom].Tol)
}

// TestGoldenCLIP checks the text encoders and the conditioning built from
// them against transformers' CLIPTextModel(+WithProjection) and diffusers'
// encode_prompt.
func TestGoldenCLIP(t *testing.T) {
	b, choice, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(backend.Describe(b, choice))
	for _, s := range golden.Sidecars(t) {
		switch {
		case s.Has("text.last_hidden_state"):
			checkSD(t, b, s)
		case s.Has("text2.text_embeds"):
			checkSDXL(t, b, s)
		}
	}
}

func checkSD(t *testing.T, b compute.Backend, s *golden.Sidecar) {
	m := load(t, filepath.Join(s.ModelDir, "text_encoder"))
	o := encode(t, b, m, ids(t, s, "tok.input_ids"))
	check(t, s, "text.last_hidden_state", o.LastHiddenState)
	check(t, s, "text.hidden_states_m2", o.Penultimate())
	check(t, s, "text.pooler_output", o.Pooled)

	c, err := clip.NewConditioner(b, nn.Options{}, m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Finalize()
	cond := func(rows ...int) *clip.HostConditioning {
		h, err := c.Encode(ids(t, s, "tok.input_ids", rows...))
		if err != nil {
			t.Fatal(err)
		}
		if h.TextEmbeds != nil {
			t.Errorf("SD conditioning has text_embeds")
		}
		return h
	}
	// pipe.prompt_embeds is prompt row 1.
	checkAs(t, s, "pipe.prompt_embeds", "text.last_hidden_state", cond(1).Context)
	// The LCD step tokenizes its prompts itself; its unconditional
	// embedding is CLIP("").
	prompts := lcdPrompts(t, s)
	if prompts == nil {
		return
	}
	lcdIDs := tokenize(t, s, "tokenizer", prompts)
	if lcdIDs == nil {
		return
	}
	h, err := c.Encode(lcdIDs)
	if err != nil {
		t.Fatal(err)
	}
	checkAs(t, s, "lcd.prompt_embeds", "text.last_hidden_state", h.Context)
	if h, err = c.Encode(tokenize(t, s, "tokenizer", make([]string, len(prompts)))); err != nil {
		t.Fatal(err)
	}
	checkAs(t, s, "lcd.uncond_prompt_embeds", "text.last_hidden_state", h.Context)
}

func checkSDXL(t *testing.T, b compute.Backend, s *golden.Sidecar) {
	m1 := load(t, filepath.Join(s.ModelDir, "text_encoder"))
	m2 := load(t, filepath.Join(s.ModelDir, "text_encoder_2"))
	if m1.Config.WithProjection || !m2.Config.WithProjection {
		t.Fatalf("architectures: encoder 1 with projection %v, encoder 2 %v", m1.Config.WithProjection, m2.Config.WithProjection)
	}
	o1 := encode(t, b, m1, ids(t, s, "tok.input_ids"))
	check(t, s, "text1.hidden_states_m2", o1.Penultimate())
	o2 := encode(t, b, m2, ids(t, s, "tok.input_ids_2"))
	check(t, s, "text2.hidden_states_m2", o2.Penultimate())
	check(t, s, "text2.text_embeds", o2.TextEmbeds)

	c, err := clip.NewConditioner(b, nn.Options{}, m1, m2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Finalize()
	h, err := c.Encode(ids(t, s, "tok.input_ids"), ids(t, s, "tok.input_ids_2"))
	if err != nil {
		t.Fatal(err)
	}
	check(t, s, "pipe.prompt_embeds", h.Context)
	check(t, s, "pipe.pooled_prompt_embeds", h.TextEmbeds)
	z := c.Zeros(2, 77)
	check(t, s, "pipe.negative_prompt_embeds", z.Context)
	if d := z.TextEmbeds.Shape().Dimensions; !slices.Equal(d, []int{2, 16}) {
		t.Errorf("zero text_embeds shape %v, want [2 16]", d)
	}

	// unet.time_ids: orig (48,80),(64,64), crops (0,8),(4,0), target 64×64.
	rowsIDs := append(clip.TimeIDs(48, 80, 0, 8, 64, 64), clip.TimeIDs(64, 64, 4, 0, 64, 64)...)
	s.CheckFloat32(t, "unet.time_ids", rowsIDs, []int{2, 6})

	// The keys hold commas ("orig_size(h,w)"), which struct tags cannot name.
	var lcd struct {
		Batch map[string]json.RawMessage `json:"batch"`
	}
	var orig, crop [][2]int
	var res int
	if err := json.Unmarshal(s.Raw["lcd"], &lcd); err != nil {
		t.Fatal(err)
	}
	for key, v := range map[string]any{"orig_size(h,w)": &orig, "crop_coords(top,left)": &crop, "resolution": &res} {
		if err := json.Unmarshal(lcd.Batch[key], v); err != nil {
			t.Fatalf("lcd.batch %s: %v", key, err)
		}
	}
	var lcdIDs []float32
	for i, o := range orig {
		lcdIDs = append(lcdIDs, clip.TimeIDs(o[0], o[1], crop[i][0], crop[i][1], res, res)...)
	}
	s.CheckFloat32(t, "lcd.time_ids", lcdIDs, []int{len(orig), 6})

	prompts := lcdPrompts(t, s)
	if prompts == nil {
		return
	}
	ids1, ids2 := tokenize(t, s, "tokenizer", prompts), tokenize(t, s, "tokenizer_2", prompts)
	if ids1 == nil || ids2 == nil {
		return
	}
	if h, err = c.Encode(ids1, ids2); err != nil {
		t.Fatal(err)
	}
	checkAs(t, s, "lcd.prompt_embeds", "pipe.prompt_embeds", h.Context)
	checkAs(t, s, "lcd.text_embeds", "pipe.pooled_prompt_embeds", h.TextEmbeds)
}

// lcdPrompts are the LCD step's prompts, from the sidecar's lcd section
// ("prompts" for tiny-sd, "batch.text" for tiny-sdxl); nil when absent.
func lcdPrompts(t *testing.T, s *golden.Sidecar) []string {
	t.Helper()
	var lcd struct {
		Prompts []string `json:"prompts"`
		Batch   struct {
			Text []string `json:"text"`
		} `json:"batch"`
	}
	if raw, ok := s.Raw["lcd"]; !ok || json.Unmarshal(raw, &lcd) != nil {
		t.Logf("%s: no lcd section; lcd.* text entries not checked", s.Name)
		return nil
	}
	return append(lcd.Prompts, lcd.Batch.Text...)
}

// tokenize encodes prompts with the model folder's tokenizer (sub names it:
// "tokenizer" or "tokenizer_2"), as the distillation scripts do; the lcd.*
// entries store no token ids. It returns nil, logging why, when the
// tokenizer cannot be loaded.
func tokenize(t *testing.T, s *golden.Sidecar, sub string, prompts []string) *tensors.Tensor {
	t.Helper()
	tok, err := tokenizer.Load(filepath.Join(s.ModelDir, sub))
	if err != nil {
		t.Logf("%s: tokenizer %s: %v; lcd.* text entries not checked", s.Name, sub, err)
		return nil
	}
	ids, _ := tok.EncodeBatch(prompts)
	return tensors.FromFlatDataAndDimensions(ids, len(prompts), tok.MaxLength)
}

// TestPooledAtFirstEOS: with a non-legacy eos_token_id the pooled output is
// taken at the first position holding that id (49407 is also the largest id,
// so it matches the legacy golden values), and at position 0 when the id
// does not occur (torch.argmax of an all-zero row).
func TestPooledAtFirstEOS(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	s := golden.Load(t, "tiny-sd-golden")
	m := load(t, filepath.Join(s.ModelDir, "text_encoder"))
	m.Config.EOSTokenID = 49407
	o := encode(t, b, m, ids(t, s, "tok.input_ids"))
	check(t, s, "text.pooler_output", o.Pooled)

	m.Config.EOSTokenID = 3 // never in these prompts
	o = encode(t, b, m, ids(t, s, "tok.input_ids"))
	pooled, _ := golden.Host(t, o.Pooled)
	last, _ := golden.Host(t, o.LastHiddenState)
	const L, D = 77, 32
	for r := range len(pooled) / D {
		if !slices.Equal(pooled[r*D:(r+1)*D], last[r*L*D:r*L*D+D]) {
			t.Errorf("row %d: pooled is not the state at position 0", r)
		}
	}
}

// TestGoldenCLIPSkipsMissingEntries runs the SD checks on a copy of the
// tiny-sd sidecar without pipe.prompt_embeds (older or partial fixture
// sets): every other entry is still checked, and the missing one is
// skipped by name instead of failing the test.
func TestGoldenCLIPSkipsMissingEntries(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	full := golden.Load(t, "tiny-sd-golden")
	const dropped = "pipe.prompt_embeds"
	dir := t.TempDir()
	f, err := full.File()
	if err != nil {
		t.Fatal(err)
	}
	var kept []*safetensors.Tensor
	for _, name := range f.Names() {
		if name != dropped {
			kept = append(kept, f.Tensors[name])
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "part-golden.safetensors"), kept, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	var sidecar map[string]any
	data, err := os.ReadFile(filepath.Join(full.Dir, full.Name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &sidecar); err != nil {
		t.Fatal(err)
	}
	delete(sidecar["entries"].(map[string]any), dropped)
	sidecar["file"] = "part-golden.safetensors"
	sidecar["model_dir"], sidecar["teacher_dir"] = full.ModelDir, full.TeacherDir
	if data, err = json.Marshal(sidecar); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "part-golden.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(golden.EnvDir, dir)
	s := golden.Load(t, "part-golden")
	if s.Has(dropped) {
		t.Fatalf("the partial sidecar still has %s", dropped)
	}
	checkSD(t, b, s)
}
