// Package tokenizer is the CLIP byte-level BPE tokenizer of Stable Diffusion's
// text encoders, matching transformers' slow CLIPTokenizer with ftfy installed
// (transformers 4.35, ftfy 6.1.1) id for id: text cleaning (ftfy.fix_text,
// whitespace_clean, lower-casing), CLIP's pre-tokenization pattern,
// bytes_to_unicode, BPE with the "</w>" end-of-word marker, added tokens split
// out first, and padding to model_max_length (77) with bos/eos.
//
// Load reads the tokenizer folder of a diffusers pipeline (vocab.json,
// merges.txt, tokenizer_config.json, special_tokens_map.json, or tokenizer.json
// alone); New builds one from a vocabulary and merges in memory and WriteDir
// saves it in the same layout. It depends only on the standard library and
// golang.org/x/text (NFC normalization and the code pages ftfy re-decodes
// mojibake with).
package tokenizer

import (
	"fmt"
	"sort"
	"strings"
)

// CLIP's special tokens and context length, the defaults of New.
const (
	DefaultBOS       = "<|startoftext|>"
	DefaultEOS       = "<|endoftext|>"
	DefaultMaxLength = 77
)

// Tokenizer turns prompts into the fixed-length id rows CLIP text encoders
// take. It is safe for concurrent use once set up; change its exported fields
// (NoFtfy, MaxLength) only before sharing it.
type Tokenizer struct {
	// BOS, EOS and Pad are the ids written before, after and behind the tokens
	// of every prompt. SD's tokenizer pads with <|endoftext|> (49407); SDXL's
	// tokenizer_2 and SD 2.x pad with "!" (id 0).
	BOS, EOS, Pad int64
	// Unk is the id of tokens missing from the vocabulary.
	Unk int64
	// MaxLength is the length of every encoded row (model_max_length, 77):
	// bos, at most MaxLength-2 tokens, eos, then padding.
	MaxLength int
	// VocabSize bounds every id: one more than the largest id in the
	// vocabulary and the added tokens.
	VocabSize int
	// NoFtfy selects the cleaning transformers uses when ftfy is not
	// installed (BasicTokenizer: splits CJK ideographs apart, no mojibake or
	// quote fixes). Set it before first use.
	NoFtfy bool

	specials Specials
	vocab    map[string]int
	merges   [][2]string
	added    []addedToken // longest first
	model    *bpeModel
}

// Specials names the special tokens of a tokenizer. Empty fields take CLIP's
// defaults: bos <|startoftext|>, eos <|endoftext|>, pad and unk = eos, 77.
type Specials struct {
	BOS, EOS, Pad, Unk string
	MaxLength          int
	// Added lists further added tokens, split out of the text before BPE like
	// the special ones.
	Added []string
}

// addedToken is a string that is matched in the raw text and becomes one id.
// LStrip/RStrip drop the whitespace left/right of it (AddedToken options).
type addedToken struct {
	content        string
	id             int64
	lstrip, rstrip bool
}

// New builds a tokenizer from a vocabulary (token -> id, tokens in the
// bytes_to_unicode alphabet with "</w>" ends, as in vocab.json) and merges in
// rank order (as in merges.txt). At most one Specials may be given; every
// special token must be in vocab.
func New(vocab map[string]int, merges [][2]string, specials ...Specials) (*Tokenizer, error) {
	if len(specials) > 1 {
		return nil, fmt.Errorf("tokenizer.New: %d Specials given, want at most 1", len(specials))
	}
	var sp Specials
	if len(specials) == 1 {
		sp = specials[0]
	}
	var added []addedToken
	for _, s := range sp.Added {
		id, ok := vocab[s]
		if !ok {
			return nil, fmt.Errorf("tokenizer.New: added token %q is not in the vocabulary", s)
		}
		added = append(added, addedToken{content: s, id: int64(id)})
	}
	return build(vocab, merges, sp, added)
}

// build finishes a tokenizer: defaults, special ids, added tokens, BPE tables.
func build(vocab map[string]int, merges [][2]string, sp Specials, added []addedToken) (*Tokenizer, error) {
	if sp.BOS == "" {
		sp.BOS = DefaultBOS
	}
	if sp.EOS == "" {
		sp.EOS = DefaultEOS
	}
	if sp.Pad == "" {
		sp.Pad = sp.EOS
	}
	if sp.Unk == "" {
		sp.Unk = sp.EOS
	}
	if sp.MaxLength == 0 {
		sp.MaxLength = DefaultMaxLength
	}
	if sp.MaxLength < 2 {
		return nil, fmt.Errorf("tokenizer: max length %d leaves no room for bos and eos", sp.MaxLength)
	}
	ids := make(map[string]int64, len(added))
	for _, a := range added {
		ids[a.content] = a.id
	}
	t := &Tokenizer{MaxLength: sp.MaxLength, specials: sp, vocab: vocab, merges: merges}
	for _, s := range []struct {
		role, token string
		id          *int64
	}{{"bos", sp.BOS, &t.BOS}, {"eos", sp.EOS, &t.EOS}, {"pad", sp.Pad, &t.Pad}, {"unk", sp.Unk, &t.Unk}} {
		id, ok := ids[s.token]
		if !ok {
			v, inVocab := vocab[s.token]
			if !inVocab {
				return nil, fmt.Errorf("tokenizer: %s token %q is neither in the vocabulary nor an added token", s.role, s.token)
			}
			id = int64(v)
			added = append(added, addedToken{content: s.token, id: id})
			ids[s.token] = id
		}
		*s.id = id
	}
	// Special tokens are added tokens too: transformers splits every one of
	// them out of the text, so with pad "!" each "!" becomes id Pad on its own.
	seen := map[string]bool{}
	for _, a := range added {
		if !seen[a.content] && a.content != "" {
			seen[a.content] = true
			t.added = append(t.added, a)
		}
	}
	sort.SliceStable(t.added, func(i, j int) bool { return len(t.added[i].content) > len(t.added[j].content) })
	for _, id := range vocab {
		t.VocabSize = max(t.VocabSize, id+1)
	}
	for _, a := range t.added {
		t.VocabSize = max(t.VocabSize, int(a.id)+1)
	}
	t.model = newBPEModel(vocab, merges, t.Unk)
	return t, nil
}

// Encode tokenizes one prompt into MaxLength ids (bos, the first MaxLength-2
// tokens, eos, padding) and its attention mask (1 up to and including eos).
func (t *Tokenizer) Encode(text string) (ids, attentionMask []int64) {
	ids = make([]int64, t.MaxLength)
	attentionMask = make([]int64, t.MaxLength)
	t.encodeInto(text, ids, attentionMask)
	return ids, attentionMask
}

// EncodeBatch encodes prompts into row-major [len(texts), MaxLength] ids and
// attention masks, ready to be a tensor.
func (t *Tokenizer) EncodeBatch(texts []string) (ids, attentionMask []int64) {
	ids = make([]int64, len(texts)*t.MaxLength)
	attentionMask = make([]int64, len(texts)*t.MaxLength)
	for i, text := range texts {
		row := ids[i*t.MaxLength : (i+1)*t.MaxLength]
		t.encodeInto(text, row, attentionMask[i*t.MaxLength:(i+1)*t.MaxLength])
	}
	return ids, attentionMask
}

func (t *Tokenizer) encodeInto(text string, ids, mask []int64) {
	tokens := t.Tokenize(text)
	if n := t.MaxLength - 2; len(tokens) > n {
		tokens = tokens[:n] // truncation=True keeps the first tokens
	}
	ids[0] = t.BOS
	copy(ids[1:], tokens)
	ids[1+len(tokens)] = t.EOS
	for i := 2 + len(tokens); i < len(ids); i++ {
		ids[i] = t.Pad
	}
	for i := range mask {
		mask[i] = 0
		if i < 2+len(tokens) {
			mask[i] = 1
		}
	}
}

// Tokenize returns the ids of text without bos, eos, truncation or padding.
func (t *Tokenizer) Tokenize(text string) []int64 {
	var out []int64
	t.splitAdded(text, func(segment string, added int64) {
		if added >= 0 {
			out = append(out, added)
			return
		}
		var cleaned string
		if t.NoFtfy {
			cleaned = cleanBasic(segment)
		} else {
			cleaned = cleanFtfy(segment)
		}
		splitWords(cleaned, func(word string) {
			if word == startLiteral || word == endLiteral {
				// CLIPTokenizer.bpe has these two in its cache, without "</w>".
				if id, ok := t.vocab[word]; ok {
					out = append(out, int64(id))
				} else {
					out = append(out, t.Unk)
				}
				return
			}
			out = append(out, t.model.word(word)...)
		})
	})
	return out
}

// splitAdded is transformers' tokens_trie.split plus the lstrip/rstrip rules:
// it calls fn with each added token (its id) and with each non-empty stretch
// of text between them (id -1), left to right; at one position the longest
// added token wins.
func (t *Tokenizer) splitAdded(text string, fn func(segment string, added int64)) {
	var pending string // text before the next added token
	var prevRStrip bool
	for i := 0; i < len(text); {
		a := t.addedAt(text[i:])
		if a == nil {
			i++
			continue
		}
		pending = text[:i]
		if prevRStrip {
			pending = strings.TrimLeftFunc(pending, isPySpace)
		}
		if a.lstrip {
			pending = strings.TrimRightFunc(pending, isPySpace)
		}
		if pending != "" {
			fn(pending, -1)
		}
		fn(a.content, a.id)
		prevRStrip = a.rstrip
		text = text[i+len(a.content):]
		i = 0
	}
	if prevRStrip {
		text = strings.TrimLeftFunc(text, isPySpace)
	}
	if text != "" {
		fn(text, -1)
	}
}

func (t *Tokenizer) addedAt(s string) *addedToken {
	for i := range t.added {
		if strings.HasPrefix(s, t.added[i].content) {
			return &t.added[i]
		}
	}
	return nil
}
