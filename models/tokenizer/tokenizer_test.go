package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golcm/golcm/internal/golden"
)

// tinyVocab is a CLIP-style vocabulary small enough to read: the 256 byte
// symbols, the same with "</w>", the results of tinyMerges, then bos and eos.
func tinyVocab() (map[string]int, [][2]string) {
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteRunes[b])] = b
		vocab[string(byteRunes[b])+endOfWord] = 256 + b
	}
	merges := [][2]string{{"c", "a"}, {"ca", "t</w>"}, {"s", "o"}, {"so", "f"}, {"sof", "a</w>"}, {"!", "!</w>"}}
	for _, m := range merges {
		vocab[m[0]+m[1]] = len(vocab)
	}
	vocab[DefaultBOS] = len(vocab)
	vocab[DefaultEOS] = len(vocab)
	return vocab, merges
}

func newTiny(t *testing.T, sp ...Specials) *Tokenizer {
	t.Helper()
	vocab, merges := tinyVocab()
	tok, err := New(vocab, merges, sp...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNewTokenizerMergesAndPads(t *testing.T) {
	vocab, _ := tinyVocab()
	tok := newTiny(t, Specials{MaxLength: 8})
	ids, mask := tok.Encode("Cat  SOFA!!")
	want := []int64{int64(vocab[DefaultBOS]), int64(vocab["cat</w>"]), int64(vocab["sofa</w>"]),
		int64(vocab["!!</w>"]), tok.EOS, tok.Pad, tok.Pad, tok.Pad}
	if !slices.Equal(ids, want) || !slices.Equal(mask, []int64{1, 1, 1, 1, 1, 0, 0, 0}) {
		t.Fatalf("Encode = %v mask %v, want %v", ids, mask, want)
	}
	if tok.Pad != tok.EOS || tok.VocabSize != len(vocab) {
		t.Fatalf("pad %d eos %d vocab size %d, want pad = eos and %d", tok.Pad, tok.EOS, tok.VocabSize, len(vocab))
	}
	// Unmerged letters stay single byte symbols; the last one carries </w>.
	if got := tok.Tokenize("ab"); !slices.Equal(got, []int64{int64(vocab["a"]), int64(vocab["b</w>"])}) {
		t.Fatalf("Tokenize(ab) = %v", got)
	}
}

func TestSpecialTextBecomesSpecialIDs(t *testing.T) {
	tok := newTiny(t)
	got := tok.Tokenize("cat<|endoftext|>cat <|STARTOFTEXT|>")
	want := []int64{tok.model.word("cat")[0], tok.EOS, tok.model.word("cat")[0], tok.BOS}
	if !slices.Equal(got, want) {
		t.Fatalf("Tokenize = %v, want %v", got, want)
	}
}

func TestPadTokenSplitsOutOfText(t *testing.T) {
	vocab, _ := tinyVocab()
	tok := newTiny(t, Specials{Pad: "!"})
	got := tok.Tokenize("cat!!!")
	bang := int64(vocab["!"])
	if !slices.Equal(got, []int64{int64(vocab["cat</w>"]), bang, bang, bang}) {
		t.Fatalf("Tokenize(cat!!!) with pad \"!\" = %v, want cat and three %d", got, bang)
	}
	ids, _ := tok.Encode("cat")
	if ids[2] != tok.EOS || ids[3] != bang {
		t.Fatalf("Encode(cat) = %v, want padding with %d", ids[:5], bang)
	}
}

func TestWriteDirRoundTripsThroughLoad(t *testing.T) {
	tok := newTiny(t, Specials{Pad: "!", MaxLength: 16})
	dir := t.TempDir()
	if err := tok.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("WriteDir did not write %s: %v", name, err)
		}
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.BOS != tok.BOS || back.EOS != tok.EOS || back.Pad != tok.Pad || back.MaxLength != 16 ||
		back.VocabSize != tok.VocabSize {
		t.Fatalf("reloaded specials %d/%d/%d len %d size %d, want %d/%d/%d len 16 size %d",
			back.BOS, back.EOS, back.Pad, back.MaxLength, back.VocabSize, tok.BOS, tok.EOS, tok.Pad, tok.VocabSize)
	}
	for _, p := range []string{"", "a cat on a sofa!!", "Ünïcödé 東京 ½ “q”", strings.Repeat("cat ", 30)} {
		a, am := tok.Encode(p)
		b, bm := back.Encode(p)
		if !slices.Equal(a, b) || !slices.Equal(am, bm) {
			t.Errorf("Encode(%q) after round trip = %v, want %v", p, b, a)
		}
	}
}

func TestLoadReadsTokenizerJSONAlone(t *testing.T) {
	vocab, merges := tinyVocab()
	var mergeLines []string
	for _, m := range merges {
		mergeLines = append(mergeLines, m[0]+" "+m[1])
	}
	file := map[string]any{
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": mergeLines, "unk_token": DefaultEOS},
		"added_tokens": []map[string]any{
			{"id": vocab[DefaultBOS], "content": DefaultBOS}, {"id": vocab[DefaultEOS], "content": DefaultEOS},
		},
		"post_processor": map[string]any{"type": "RobertaProcessing",
			"cls": []any{DefaultBOS, vocab[DefaultBOS]}, "sep": []any{DefaultEOS, vocab[DefaultEOS]}},
	}
	data, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := newTiny(t).Encode("a cat!!")
	if got, _ := tok.Encode("a cat!!"); !slices.Equal(got, want) {
		t.Fatalf("tokenizer.json Encode = %v, want %v", got, want)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "vocab.json") {
		t.Errorf("Load(empty dir) error = %v, want one naming vocab.json", err)
	}
	os.WriteFile(filepath.Join(dir, "vocab.json"), []byte(`{"a": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}`), 0o644)
	os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\na b c\n"), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "merges.txt:2") {
		t.Errorf("Load(bad merges) error = %v, want one naming merges.txt:2", err)
	}
	os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "special_tokens_map.json"), []byte(`{"pad_token": 7}`), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "special_tokens_map.json") {
		t.Errorf("Load(bad special tokens) error = %v, want one naming special_tokens_map.json", err)
	}
	os.WriteFile(filepath.Join(dir, "special_tokens_map.json"), []byte(`{"pad_token": {"content": "<pad>"}}`), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `"<pad>"`) {
		t.Errorf("Load(unknown pad) error = %v, want one naming \"<pad>\"", err)
	}
}

// fuzzTokenizer is the real CLIP tokenizer when the fixtures are there, else
// the tiny one.
func fuzzTokenizer(tb testing.TB) *Tokenizer {
	tb.Helper()
	if tok, err := Load(filepath.Join(golden.Dir(), "tiny-sd", "tokenizer")); err == nil {
		return tok
	}
	vocab, merges := tinyVocab()
	tok, err := New(vocab, merges)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "a photo of a cat", "Hello, World!!! 'S 'll", "CafÃ© â€” ðŸŒ  &amp; &EACUTE;",
		"東京タワー 🐱🚀 ½ “q”", "\xff\xfe\x00\x1b[31m<|endoftext|>", "ΟΔΟΣ İ ﬁ ＡＢ\r\n\u2028x", "&#0;&#x110000;&#128;"} {
		f.Add([]byte(s))
	}
	tok := fuzzTokenizer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, mask := tok.Encode(string(data))
		if len(ids) != tok.MaxLength || len(mask) != tok.MaxLength {
			t.Fatalf("got %d ids and %d mask values, want %d", len(ids), len(mask), tok.MaxLength)
		}
		if ids[0] != tok.BOS || mask[0] != 1 {
			t.Fatalf("row starts with %d (mask %d), want bos %d", ids[0], mask[0], tok.BOS)
		}
		for i, id := range ids {
			if id < 0 || id >= int64(tok.VocabSize) {
				t.Fatalf("id %d at %d is outside [0, %d)", id, i, tok.VocabSize)
			}
		}
	})
}

var benchCaptions = []string{
	"a photo of a cat sitting on a red sofa",
	"an astronaut riding a horse on mars, digital art",
	"a bowl of ramen on a wooden table, studio lighting",
	"portrait of an old man with a beard, oil painting",
	"a red fox in a misty forest at dawn, 35mm photo",
	"a cozy cabin in the snowy mountains at night",
	"a cup of coffee next to an open book, morning light",
	"a futuristic city skyline with flying cars, 8k",
}

// BenchmarkEncode measures short captions per second on one core, the
// tokenizer's share of a data loader.
func BenchmarkEncode(b *testing.B) {
	tok := fuzzTokenizer(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		tok.Encode(benchCaptions[n%len(benchCaptions)])
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "captions/s")
}
