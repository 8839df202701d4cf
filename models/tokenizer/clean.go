package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// cleanFtfy is the text cleaning of CLIPTokenizer._tokenize when ftfy is
// installed: whitespace_clean(ftfy.fix_text(text)).lower().
func cleanFtfy(text string) string {
	return pyLower(whitespaceClean(fixText(text)))
}

// whitespaceClean is CLIP's whitespace_clean: re.sub(r"\s+", " ", text).strip().
func whitespaceClean(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	pendingSpace := false
	for _, r := range s {
		if isPySpace(r) {
			pendingSpace = b.Len() > 0
			continue
		}
		if pendingSpace {
			b.WriteByte(' ')
			pendingSpace = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isPySpace is Python's str.isspace, which is what \s and strip() use on str:
// Unicode category Zs or bidirectional class WS, B or S.
func isPySpace(r rune) bool {
	switch {
	case r < 0x80:
		return r == ' ' || (r >= 0x09 && r <= 0x0D) || (r >= 0x1C && r <= 0x1F)
	case r == 0x85 || r == 0xA0 || r == 0x1680 || r == 0x2028 || r == 0x2029 ||
		r == 0x202F || r == 0x205F || r == 0x3000:
		return true
	default:
		return r >= 0x2000 && r <= 0x200A
	}
}

// pyLower is Python's str.lower. It differs from strings.ToLower in two
// places: U+0130 becomes "i̇" (full case mapping), and a capital sigma at the
// end of a word becomes final sigma 'ς' (the Final_Sigma context).
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3A3:
			if finalSigma(s, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma reports whether the capital sigma at byte i of s is in the
// Final_Sigma context: a cased letter before it and none after it, skipping
// case-ignorable characters on both sides (CPython's handle_capital_sigma).
func finalSigma(s string, i int) bool {
	before := s[:i]
	for len(before) > 0 {
		r, n := utf8.DecodeLastRuneInString(before)
		before = before[:len(before)-n]
		if caseIgnorable(r) {
			continue
		}
		if !cased(r) {
			return false
		}
		for _, r := range s[i+utf8.RuneLen(0x3A3):] {
			if caseIgnorable(r) {
				continue
			}
			return !cased(r)
		}
		return true
	}
	return false
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// cleanBasic is the cleaning CLIPTokenizer falls back to without ftfy:
// " ".join(BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text)).
// It drops NUL, U+FFFD and control characters, puts spaces around CJK
// ideographs, applies NFC, and lower-cases each whitespace-separated word.
func cleanBasic(text string) string {
	var b strings.Builder
	for _, r := range text {
		switch {
		case r == 0 || r == utf8.RuneError:
		case r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		case isBasicControl(r):
		case isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	words := strings.FieldsFunc(norm.NFC.String(b.String()), isPySpace)
	for i, w := range words {
		words[i] = pyLower(w)
	}
	return strings.Join(words, " ")
}

// isBasicControl is BasicTokenizer's _is_control for everything but tab,
// newline and carriage return (handled as spaces): any category C* character,
// unassigned code points included.
func isBasicControl(r rune) bool {
	return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// isCJK is BasicTokenizer._is_chinese_char: the CJK Unified Ideographs blocks.
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}
