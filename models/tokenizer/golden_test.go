package tokenizer

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/golcm/golcm/internal/golden"
)

// goldenTokenizers lists, per fixture entry, the tokenizer folder that made it.
var goldenTokenizers = []struct{ folder, entry string }{
	{"tokenizer", "tok.input_ids"},
	{"tokenizer", "tok.attention_mask"},
	{"tokenizer_2", "tok.input_ids_2"},
}

func TestGoldenTokenizer(t *testing.T) {
	checked := 0
	for _, s := range golden.Sidecars(t) {
		if len(s.Prompts) == 0 || s.ModelDir == "" {
			continue
		}
		for _, g := range goldenTokenizers {
			if !s.Has(g.entry) {
				continue
			}
			tok := loadGoldenTokenizer(t, filepath.Join(s.ModelDir, g.folder))
			ids, mask := tok.EncodeBatch(s.Prompts)
			got := ids
			if g.entry == "tok.attention_mask" {
				got = mask
			}
			s.CheckInt64(t, g.entry, got, []int{len(s.Prompts), tok.MaxLength})
			checked++
		}
		if s.Has("tok.input_ids_noftfy") {
			tok := loadGoldenTokenizer(t, filepath.Join(s.ModelDir, "tokenizer"))
			tok.NoFtfy = true
			ids, _ := tok.EncodeBatch(s.Prompts)
			s.CheckInt64(t, "tok.input_ids_noftfy", ids, []int{len(s.Prompts), tok.MaxLength})
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no sidecar has tok.* entries")
	}
}

func loadGoldenTokenizer(t testing.TB, dir string) *Tokenizer {
	t.Helper()
	tok, err := Load(dir)
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	return tok
}

// sdGolden returns the tiny-sd tokenizer and its reference rows, one per prompt.
func sdGolden(t *testing.T) (tok *Tokenizer, prompts []string, ids, noFtfy, mask [][]int64) {
	t.Helper()
	s := golden.Load(t, "tiny-sd-golden")
	tok = loadGoldenTokenizer(t, filepath.Join(s.ModelDir, "tokenizer"))
	rows := func(entry string) [][]int64 {
		flat, shape := s.Int64(t, entry)
		var out [][]int64
		for r := range shape[0] {
			out = append(out, flat[r*shape[1]:(r+1)*shape[1]])
		}
		return out
	}
	return tok, s.Prompts, rows("tok.input_ids"), rows("tok.input_ids_noftfy"), rows("tok.attention_mask")
}

// Row numbers of tiny-sd-golden's prompts.
const (
	rowEmpty   = 0
	rowLong    = 3
	rowUnicode = 4
)

func TestEmptyPromptIsBOSThenEOS(t *testing.T) {
	tok, prompts, ids, _, mask := sdGolden(t)
	if prompts[rowEmpty] != "" {
		t.Fatalf("row %d is %q, want the empty prompt", rowEmpty, prompts[rowEmpty])
	}
	got, gotMask := tok.Encode("")
	if !slices.Equal(got, ids[rowEmpty]) || !slices.Equal(gotMask, mask[rowEmpty]) {
		t.Fatalf("Encode(\"\") = %v mask %v\nwant %v mask %v", got, gotMask, ids[rowEmpty], mask[rowEmpty])
	}
	if got[0] != 49406 || got[1] != 49407 || got[2] != 49407 || gotMask[1] != 1 || gotMask[2] != 0 {
		t.Fatalf("Encode(\"\") starts %v mask %v, want bos 49406, eos 49407, pad 49407", got[:3], gotMask[:3])
	}
}

func TestLongPromptKeepsFirst75Tokens(t *testing.T) {
	tok, prompts, ids, _, mask := sdGolden(t)
	all := tok.Tokenize(prompts[rowLong])
	if len(all) <= tok.MaxLength-2 {
		t.Fatalf("row %d has %d tokens, want more than %d", rowLong, len(all), tok.MaxLength-2)
	}
	got, gotMask := tok.Encode(prompts[rowLong])
	if !slices.Equal(got, ids[rowLong]) || !slices.Equal(gotMask, mask[rowLong]) {
		t.Fatalf("Encode(long) = %v\nwant %v", got, ids[rowLong])
	}
	if !slices.Equal(got[1:76], all[:75]) || got[76] != tok.EOS || slices.Contains(gotMask, 0) {
		t.Fatalf("long prompt: want bos, its first 75 tokens, eos at 76 and a full mask; got %v mask %v", got, gotMask)
	}
}

func TestNonASCIIPromptMatchesFtfyPath(t *testing.T) {
	tok, prompts, ids, noFtfy, _ := sdGolden(t)
	got, _ := tok.Encode(prompts[rowUnicode])
	if !slices.Equal(got, ids[rowUnicode]) {
		t.Fatalf("Encode(%q) =\n%v\nwant\n%v", prompts[rowUnicode], got, ids[rowUnicode])
	}
	// ftfy straightens the curly quotes: both become '"</w>' (257).
	if n := countOf(got, 257); n != 2 {
		t.Errorf("unicode row has %d straight quotes (257), want 2", n)
	}
	basic := *tok
	basic.NoFtfy = true
	for r, p := range prompts {
		got, _ := basic.Encode(p)
		if !slices.Equal(got, noFtfy[r]) {
			t.Errorf("NoFtfy row %d %q =\n%v\nwant\n%v", r, p, got, noFtfy[r])
		}
		if differs := !slices.Equal(noFtfy[r], ids[r]); differs != (r == rowUnicode) {
			t.Errorf("row %d: ftfy and no-ftfy ids differ=%v; the fixture says only row %d differs", r, differs, rowUnicode)
		}
	}
}

func TestPadExclamationIsAddedToken(t *testing.T) {
	s := golden.Load(t, "tiny-sdxl-golden")
	tok := loadGoldenTokenizer(t, filepath.Join(s.ModelDir, "tokenizer_2"))
	if tok.Pad != 0 || tok.EOS != 49407 {
		t.Fatalf("tokenizer_2 pad %d eos %d, want 0 and 49407", tok.Pad, tok.EOS)
	}
	if got := tok.Tokenize("wow!!!"); len(got) != 4 || !slices.Equal(got[1:], []int64{0, 0, 0}) {
		t.Errorf("Tokenize(wow!!!) = %v, want one token for wow then three 0s", got)
	}
	if got := tok.Tokenize("!!!"); !slices.Equal(got, []int64{0, 0, 0}) {
		t.Errorf("Tokenize(!!!) = %v, want [0 0 0]", got)
	}
	sd := loadGoldenTokenizer(t, filepath.Join(s.ModelDir, "tokenizer"))
	if got := sd.Tokenize("!!!"); !slices.Equal(got, []int64{995}) {
		t.Errorf("tokenizer (pad <|endoftext|>) Tokenize(!!!) = %v, want the single BPE token [995]", got)
	}
}

func countOf(s []int64, v int64) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
