package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Load reads a tokenizer folder as diffusers ships it (for example
// <pipeline>/tokenizer or <pipeline>/tokenizer_2): the vocabulary and merges
// from vocab.json and merges.txt, or from tokenizer.json when those are
// missing; the special tokens and model_max_length from tokenizer_config.json
// and special_tokens_map.json (which wins, as in transformers), and added
// tokens from tokenizer_config.json's added_tokens_decoder and added_tokens.json.
func Load(dir string) (*Tokenizer, error) {
	var (
		vocab  map[string]int
		merges [][2]string
		fast   *fastTokenizerFile
		err    error
	)
	if exists(filepath.Join(dir, "vocab.json")) || !exists(filepath.Join(dir, "tokenizer.json")) {
		if vocab, err = readVocab(filepath.Join(dir, "vocab.json")); err != nil {
			return nil, err
		}
		if merges, err = readMerges(filepath.Join(dir, "merges.txt")); err != nil {
			return nil, err
		}
	} else {
		path := filepath.Join(dir, "tokenizer.json")
		if fast, err = readFastTokenizer(path); err != nil {
			return nil, err
		}
		vocab, merges = fast.Model.Vocab, fast.merges
	}

	var sp Specials
	var added []addedToken
	if fast != nil {
		fast.specials(&sp)
		added = append(added, fast.added()...)
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	var cfg tokenizerConfig
	if err := readOptionalJSON(cfgPath, &cfg); err != nil {
		return nil, err
	}
	cfg.specialTokens.apply(&sp)
	if cfg.ModelMaxLength > 0 && cfg.ModelMaxLength < 1<<20 {
		sp.MaxLength = int(cfg.ModelMaxLength) // very large values mean "unset" in transformers
	}
	for idText, tok := range cfg.AddedTokensDecoder {
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: added_tokens_decoder key %q is not an id", cfgPath, idText)
		}
		added = append(added, addedToken{content: tok.Content, id: id, lstrip: tok.LStrip, rstrip: tok.RStrip})
	}
	var mapFile specialTokens
	if err := readOptionalJSON(filepath.Join(dir, "special_tokens_map.json"), &mapFile); err != nil {
		return nil, err
	}
	mapFile.apply(&sp)
	extra := map[string]int64{}
	if err := readOptionalJSON(filepath.Join(dir, "added_tokens.json"), &extra); err != nil {
		return nil, err
	}
	for content, id := range extra {
		added = append(added, addedToken{content: content, id: id})
	}
	sort.SliceStable(added, func(i, j int) bool { return added[i].id < added[j].id })
	t, err := build(vocab, merges, sp, added)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", dir, err)
	}
	return t, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readVocab(path string) (map[string]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer vocab: %w", err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, fmt.Errorf("tokenizer vocab %s: %w", path, err)
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("tokenizer vocab %s: no tokens", path)
	}
	return vocab, nil
}

// readMerges reads merges.txt: an optional "#version" line, then one "a b"
// pair per line in rank order.
func readMerges(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer merges: %w", err)
	}
	defer f.Close()
	var merges [][2]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if (line == 1 && strings.HasPrefix(text, "#version")) || text == "" {
			continue
		}
		a, b, ok := strings.Cut(text, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("tokenizer merges %s:%d: %q is not a pair \"a b\"", path, line, text)
		}
		merges = append(merges, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer merges %s: %w", path, err)
	}
	return merges, nil
}

// readOptionalJSON decodes path into v; a missing file leaves v as it is.
func readOptionalJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return nil
}

// tokenValue is a special token in tokenizer_config.json or
// special_tokens_map.json: a plain string or an AddedToken object.
type tokenValue struct {
	Content        string
	LStrip, RStrip bool
}

func (v *tokenValue) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(data, &v.Content); err == nil {
		return nil
	}
	var obj struct {
		Content string `json:"content"`
		LStrip  bool   `json:"lstrip"`
		RStrip  bool   `json:"rstrip"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("special token %s is neither a string nor an object with \"content\"", data)
	}
	v.Content, v.LStrip, v.RStrip = obj.Content, obj.LStrip, obj.RStrip
	return nil
}

type specialTokens struct {
	BOS *tokenValue `json:"bos_token"`
	EOS *tokenValue `json:"eos_token"`
	Pad *tokenValue `json:"pad_token"`
	Unk *tokenValue `json:"unk_token"`
}

func (s specialTokens) apply(sp *Specials) {
	for _, f := range []struct {
		v   *tokenValue
		dst *string
	}{{s.BOS, &sp.BOS}, {s.EOS, &sp.EOS}, {s.Pad, &sp.Pad}, {s.Unk, &sp.Unk}} {
		if f.v != nil && f.v.Content != "" {
			*f.dst = f.v.Content
		}
	}
}

type tokenizerConfig struct {
	specialTokens
	ModelMaxLength     float64               `json:"model_max_length"`
	AddedTokensDecoder map[string]tokenValue `json:"added_tokens_decoder"`
}

// fastTokenizerFile is the part of a tokenizers-library tokenizer.json that a
// CLIP BPE tokenizer needs.
type fastTokenizerFile struct {
	Model struct {
		Type     string            `json:"type"`
		Vocab    map[string]int    `json:"vocab"`
		Merges   []json.RawMessage `json:"merges"`
		UnkToken string            `json:"unk_token"`
	} `json:"model"`
	AddedTokens []struct {
		ID      int64  `json:"id"`
		Content string `json:"content"`
		LStrip  bool   `json:"lstrip"`
		RStrip  bool   `json:"rstrip"`
	} `json:"added_tokens"`
	PostProcessor *struct {
		CLS []json.RawMessage `json:"cls"`
		Sep []json.RawMessage `json:"sep"`
	} `json:"post_processor"`
	Padding *struct {
		PadToken string `json:"pad_token"`
	} `json:"padding"`
	Truncation *struct {
		MaxLength int `json:"max_length"`
	} `json:"truncation"`

	merges [][2]string
}

func readFastTokenizer(path string) (*fastTokenizerFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var f fastTokenizerFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	if f.Model.Type != "" && f.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer %s: model type %q, want BPE", path, f.Model.Type)
	}
	if len(f.Model.Vocab) == 0 {
		return nil, fmt.Errorf("tokenizer %s: model.vocab is empty", path)
	}
	for i, raw := range f.Model.Merges {
		var pair [2]string
		var line string
		if err := json.Unmarshal(raw, &line); err == nil { // "a b"
			a, b, ok := strings.Cut(line, " ")
			if !ok {
				return nil, fmt.Errorf("tokenizer %s: merge %d %q is not a pair \"a b\"", path, i, line)
			}
			pair = [2]string{a, b}
		} else if err := json.Unmarshal(raw, &pair); err != nil { // ["a", "b"]
			return nil, fmt.Errorf("tokenizer %s: merge %d is neither \"a b\" nor [a, b]: %s", path, i, raw)
		}
		f.merges = append(f.merges, pair)
	}
	return &f, nil
}

// specials takes bos/eos from the post-processor's cls/sep ([token, id]),
// unk from the model and pad from the padding settings.
func (f *fastTokenizerFile) specials(sp *Specials) {
	first := func(raw []json.RawMessage) string {
		var s string
		if len(raw) > 0 && json.Unmarshal(raw[0], &s) == nil {
			return s
		}
		return ""
	}
	if f.PostProcessor != nil {
		sp.BOS, sp.EOS = first(f.PostProcessor.CLS), first(f.PostProcessor.Sep)
	}
	sp.Unk = f.Model.UnkToken
	if f.Padding != nil {
		sp.Pad = f.Padding.PadToken
	}
	if f.Truncation != nil {
		sp.MaxLength = f.Truncation.MaxLength
	}
}

func (f *fastTokenizerFile) added() []addedToken {
	var out []addedToken
	for _, a := range f.AddedTokens {
		out = append(out, addedToken{content: a.Content, id: a.ID, lstrip: a.LStrip, rstrip: a.RStrip})
	}
	return out
}

// WriteDir saves the tokenizer as diffusers' tokenizer folder: vocab.json,
// merges.txt, tokenizer_config.json and special_tokens_map.json, so that Load
// (and transformers' CLIPTokenizer.from_pretrained) read it back.
func (t *Tokenizer) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	var merges strings.Builder
	merges.WriteString("#version: 0.2\n")
	for _, m := range t.merges {
		merges.WriteString(m[0] + " " + m[1] + "\n")
	}
	type jsonToken struct {
		Content    string `json:"content"`
		LStrip     bool   `json:"lstrip"`
		Normalized bool   `json:"normalized"`
		RStrip     bool   `json:"rstrip"`
		SingleWord bool   `json:"single_word"`
		Special    bool   `json:"special"`
	}
	decoder := map[string]jsonToken{}
	for _, a := range t.added {
		decoder[strconv.FormatInt(a.id, 10)] = jsonToken{Content: a.content, LStrip: a.lstrip, RStrip: a.rstrip,
			Normalized: true, Special: true}
	}
	config := map[string]any{
		"added_tokens_decoder":         decoder,
		"bos_token":                    t.specials.BOS,
		"eos_token":                    t.specials.EOS,
		"pad_token":                    t.specials.Pad,
		"unk_token":                    t.specials.Unk,
		"model_max_length":             t.MaxLength,
		"clean_up_tokenization_spaces": true,
		"errors":                       "replace",
		"tokenizer_class":              "CLIPTokenizer",
	}
	specialMap := map[string]string{
		"bos_token": t.specials.BOS, "eos_token": t.specials.EOS,
		"pad_token": t.specials.Pad, "unk_token": t.specials.Unk,
	}
	files := []struct {
		name string
		v    any
	}{{"vocab.json", t.vocab}, {"tokenizer_config.json", config}, {"special_tokens_map.json", specialMap}}
	for _, f := range files {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(f.v); err != nil {
			return fmt.Errorf("tokenizer %s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte(merges.String()), 0o644); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	return nil
}
