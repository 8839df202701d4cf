package tokenizer

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// endOfWord marks the last symbol of a word, as in CLIP's merges ("a</w>").
const endOfWord = "</w>"

// byteRunes is GPT-2/CLIP's bytes_to_unicode: printable Latin-1 bytes stand for
// themselves, the other 68 bytes are moved to U+0100 and up so that every byte
// has a visible, non-space character.
var byteRunes = func() [256]rune {
	var table [256]rune
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			table[b] = rune(b)
		} else {
			table[b] = rune(256 + n)
			n++
		}
	}
	return table
}()

// byteLevel returns word with every byte replaced by its bytes_to_unicode rune.
func byteLevel(word string) string {
	buf := make([]byte, 0, 2*len(word))
	for i := 0; i < len(word); i++ {
		buf = utf8.AppendRune(buf, byteRunes[word[i]])
	}
	return string(buf)
}

// merge is one BPE rule: the pair it joins has this rank and becomes result.
type merge struct {
	rank, result int32
}

// bpeModel holds the merges with symbols interned as small integers, so a word
// is merged on []int32 instead of strings. Symbol ids are private to the model;
// symbolVocab maps them to vocabulary ids (unk where a symbol is not a token).
type bpeModel struct {
	symbols     map[string]int32
	symbolVocab []int64
	merges      map[uint64]merge
	// single[b] and last[b] are the symbols of byte b inside a word and at its end.
	single, last [256]int32

	mu    sync.RWMutex
	cache map[string][]int64
}

// cacheLimit bounds the word cache; a full cache is dropped and refilled.
const cacheLimit = 1 << 16

func newBPEModel(vocab map[string]int, merges [][2]string, unk int64) *bpeModel {
	m := &bpeModel{
		symbols: make(map[string]int32, 2*len(merges)+512),
		merges:  make(map[uint64]merge, len(merges)),
		cache:   make(map[string][]int64),
	}
	intern := func(s string) int32 {
		if id, ok := m.symbols[s]; ok {
			return id
		}
		id := int32(len(m.symbolVocab))
		m.symbols[s] = id
		v, ok := vocab[s]
		if !ok {
			m.symbolVocab = append(m.symbolVocab, unk)
		} else {
			m.symbolVocab = append(m.symbolVocab, int64(v))
		}
		return id
	}
	for b := 0; b < 256; b++ {
		r := string(byteRunes[b])
		m.single[b] = intern(r)
		m.last[b] = intern(r + endOfWord)
	}
	for rank, p := range merges {
		a, b := intern(p[0]), intern(p[1])
		key := pairKey(a, b)
		if _, dup := m.merges[key]; dup {
			continue // the first (lowest) rank wins, as in a Python dict built in order
		}
		m.merges[key] = merge{rank: int32(rank), result: intern(p[0] + p[1])}
	}
	return m
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// word returns the vocabulary ids of one pre-tokenized word (raw UTF-8, not yet
// byte-level encoded), memoized.
func (m *bpeModel) word(w string) []int64 {
	m.mu.RLock()
	ids, ok := m.cache[w]
	m.mu.RUnlock()
	if ok {
		return ids
	}
	ids = m.encodeWord(w)
	m.mu.Lock()
	if len(m.cache) >= cacheLimit {
		m.cache = make(map[string][]int64)
	}
	m.cache[strings.Clone(w)] = ids // w may point into a long caption
	m.mu.Unlock()
	return ids
}

// encodeWord is CLIPTokenizer.bpe: start from single byte symbols with </w> on
// the last one, then repeatedly join every occurrence (left to right) of the
// adjacent pair with the lowest merge rank until no pair has a rank.
func (m *bpeModel) encodeWord(w string) []int64 {
	syms := make([]int32, len(w))
	for i := 0; i < len(w); i++ {
		syms[i] = m.single[w[i]]
	}
	syms[len(w)-1] = m.last[w[len(w)-1]]
	for len(syms) > 1 {
		best := merge{rank: -1}
		var first, second int32
		for i := 0; i+1 < len(syms); i++ {
			mg, ok := m.merges[pairKey(syms[i], syms[i+1])]
			if ok && (best.rank < 0 || mg.rank < best.rank) {
				best, first, second = mg, syms[i], syms[i+1]
			}
		}
		if best.rank < 0 {
			break
		}
		out := syms[:0]
		for i := 0; i < len(syms); {
			if i+1 < len(syms) && syms[i] == first && syms[i+1] == second {
				out = append(out, best.result)
				i += 2
				continue
			}
			out = append(out, syms[i])
			i++
		}
		syms = out
	}
	ids := make([]int64, len(syms))
	for i, s := range syms {
		ids[i] = m.symbolVocab[s]
	}
	return ids
}

// The two literal alternatives at the front of CLIP's pre-tokenizer pattern.
const (
	startLiteral = "<|startoftext|>"
	endLiteral   = "<|endoftext|>"
)

// splitWords is CLIP's pre-tokenizer, re.findall of
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// with re.IGNORECASE, on cleaned and lower-cased text. It calls fn for every
// match, in order. Alternatives are tried in pattern order at each position,
// as the regex engine does; whitespace is never part of a match.
func splitWords(s string, fn func(word string)) {
	for i := 0; i < len(s); {
		rest := s[i:]
		if n := literalFold(rest, startLiteral); n > 0 {
			fn(rest[:n])
			i += n
			continue
		}
		if n := literalFold(rest, endLiteral); n > 0 {
			fn(rest[:n])
			i += n
			continue
		}
		if rest[0] == '\'' {
			if n := contraction(rest[1:]); n > 0 {
				fn(rest[:1+n])
				i += 1 + n
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(rest)
		switch {
		case unicode.IsLetter(r):
			n := size
			for n < len(rest) {
				r2, s2 := utf8.DecodeRuneInString(rest[n:])
				if !unicode.IsLetter(r2) {
					break
				}
				n += s2
			}
			fn(rest[:n])
			i += n
		case unicode.IsNumber(r):
			fn(rest[:size])
			i += size
		case isPySpace(r):
			i += size
		default:
			n := size
			for n < len(rest) {
				r2, s2 := utf8.DecodeRuneInString(rest[n:])
				if unicode.IsLetter(r2) || unicode.IsNumber(r2) || isPySpace(r2) {
					break
				}
				n += s2
			}
			fn(rest[:n])
			i += n
		}
	}
}

// contraction returns the byte length of the contraction suffix ('s, 't, 're,
// 've, 'm, 'll, 'd without the apostrophe) at the start of s, or 0.
func contraction(s string) int {
	for _, c := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if n := literalFold(s, c); n > 0 {
			return n
		}
	}
	return 0
}

// literalFold reports the byte length of the prefix of s that matches the ASCII
// literal lit under IGNORECASE, or 0. Besides ASCII case only U+017F LONG S
// folds to 's' (U+212A KELVIN SIGN folds to 'k', which no literal has).
func literalFold(s, lit string) int {
	n := 0
	for j := 0; j < len(lit); j++ {
		if n >= len(s) {
			return 0
		}
		c := lit[j]
		if s[n] == c || s[n] == c-'a'+'A' && c >= 'a' && c <= 'z' {
			n++
			continue
		}
		if c == 's' && len(s) >= n+2 && s[n] == 0xC5 && s[n+1] == 0xBF { // ſ
			n += 2
			continue
		}
		return 0
	}
	return n
}
