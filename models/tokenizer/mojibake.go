package tokenizer

import (
	"bytes"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// This file ports ftfy's fix_encoding (6.1 series): text that looks like UTF-8
// decoded with a single-byte code page ("CafÃ©") is encoded back with that code
// page and decoded as UTF-8 ("Café"). The decision to try uses ftfy's badness
// heuristic, a regular expression over the few hundred characters that occur in
// such mojibake; text it does not flag is never touched.
//
// The character classes and byte patterns (badness classes, UTF8_CLUES,
// ALTERED_UTF8_RE, LOSSY_UTF8_RE) follow ftfy's sources of the 6.1 series;
// rare mojibake on which other ftfy releases disagree may come out differently.

// singleByte is one of ftfy's CHARMAP_ENCODINGS.
type singleByte struct {
	name   string
	sloppy bool // ftfy's "sloppy-" codecs: unmapped bytes stand for themselves, 0x1A for U+FFFD
	decode [256]rune
	encode map[rune]byte
}

func newSingleByte(name string, cm *charmap.Charmap, sloppy bool) *singleByte {
	e := &singleByte{name: name, sloppy: sloppy, encode: make(map[rune]byte, 256)}
	for b := 0; b < 256; b++ {
		r := rune(b)
		if cm != nil && b >= 0x80 {
			r = cm.DecodeByte(byte(b))
			if r == utf8.RuneError {
				r = rune(b) // unmapped byte: the sloppy codecs pass it through
			}
		}
		e.decode[b] = r
	}
	if sloppy {
		e.decode[0x1A] = utf8.RuneError
	}
	for b := 255; b >= 0; b-- {
		e.encode[e.decode[b]] = byte(b)
	}
	return e
}

var (
	latin1            = newSingleByte("latin-1", nil, false)
	sloppyWindows1252 = newSingleByte("sloppy-windows-1252", charmap.Windows1252, true)

	// charmapEncodings is ftfy's CHARMAP_ENCODINGS, in the order they are tried.
	charmapEncodings = []*singleByte{
		latin1,
		sloppyWindows1252,
		newSingleByte("sloppy-windows-1251", charmap.Windows1251, true),
		newSingleByte("sloppy-windows-1250", charmap.Windows1250, true),
		newSingleByte("sloppy-windows-1253", charmap.Windows1253, true),
		newSingleByte("sloppy-windows-1254", charmap.Windows1254, true),
		newSingleByte("iso-8859-2", charmap.ISO8859_2, false),
		newSingleByte("macroman", charmap.Macintosh, false),
		newSingleByte("cp437", charmap.CodePage437, false),
	}
)

// encodeText is text.encode(encoding); ok is false where a character has no byte.
func (e *singleByte) encodeText(text string) ([]byte, bool) {
	out := make([]byte, 0, len(text))
	for _, r := range text {
		if r < 0x80 && r != 0x1A {
			out = append(out, byte(r))
			continue
		}
		b, ok := e.encode[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

// fixEncoding is ftfy.fix_encoding: one-step fixes until nothing changes.
func fixEncoding(text string) string {
	for {
		fixed := fixEncodingStep(text)
		if fixed == text {
			return text
		}
		text = fixed
	}
}

// fixEncodingStep is ftfy's _fix_encoding_one_step_and_explain.
func fixEncodingStep(text string) string {
	if isASCII(text) || !isBad(text) {
		return text
	}
	for _, e := range charmapEncodings {
		encoded, ok := e.encodeText(text)
		if !ok {
			continue
		}
		if alteredUTF8(encoded) {
			encoded = restoreByteA0(encoded)
		}
		if e.sloppy {
			encoded = replaceLossySequences(encoded)
		}
		if fixed, ok := decodeUTF8Variants(encoded); ok {
			return fixed
		}
	}
	if utf8Detector.MatchString(text) {
		if fixed := decodeInconsistentUTF8(text); fixed != text {
			return fixed
		}
	}
	// What is left: Latin-1 text meant as Windows-1252, whose C1 controls are
	// the clue. ftfy's Latin-1 -> strict Windows-1252 branch and its final
	// fix_c1_controls give the same text, so one call covers both.
	return fixC1Controls(text)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// fixC1Controls is ftfy's fix_c1_controls: U+0080..U+009F read as Windows-1252.
func fixC1Controls(text string) string {
	if !strings.ContainsFunc(text, func(r rune) bool { return r >= 0x80 && r <= 0x9F }) {
		return text
	}
	return strings.Map(func(r rune) rune {
		if r >= 0x80 && r <= 0x9F {
			return sloppyWindows1252.decode[r]
		}
		return r
	}, text)
}

// decodeUTF8Variants decodes strict UTF-8, plus what ftfy's "utf-8-variants"
// codec adds when the bytes hold 0xED or 0xC0: CESU-8 surrogate pairs and
// Java's C0 80 for U+0000.
func decodeUTF8Variants(b []byte) (string, bool) {
	if bytes.IndexByte(b, 0xED) < 0 && bytes.IndexByte(b, 0xC0) < 0 {
		return string(b), utf8.Valid(b)
	}
	var out strings.Builder
	for i := 0; i < len(b); {
		if b[i] == 0xC0 && i+1 < len(b) && b[i+1] == 0x80 {
			out.WriteByte(0)
			i += 2
			continue
		}
		if cesuPair(b[i:]) {
			hi := 0xD000 | rune(b[i+1]&0x3F)<<6 | rune(b[i+2]&0x3F)
			lo := 0xD000 | rune(b[i+4]&0x3F)<<6 | rune(b[i+5]&0x3F)
			out.WriteRune(0x10000 + (hi-0xD800)<<10 + (lo - 0xDC00))
			i += 6
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return "", false
		}
		out.WriteRune(r)
		i += n
	}
	return out.String(), true
}

// cesuPair matches ED [A0-AF] [80-BF] ED [B0-BF] [80-BF] at the start of b.
func cesuPair(b []byte) bool {
	return len(b) >= 6 && b[0] == 0xED && b[1] >= 0xA0 && b[1] <= 0xAF && isCont(b[2]) &&
		b[3] == 0xED && b[4] >= 0xB0 && b[4] <= 0xBF && isCont(b[5])
}

func isCont(c byte) bool { return c >= 0x80 && c <= 0xBF }

// alteredUTF8At returns the length of ftfy's ALTERED_UTF8_RE match at the
// start of b: a UTF-8 sequence with one 0xA0 byte turned into a space.
//
//	[\xc2\xc3\xc5\xce\xd0\xd9][ ]
//	|[\xe2\xe3][ ][\x80-\x84\x86-\x9f\xa1-\xbf]
//	|[\xe0-\xe3][\x80-\x84\x86-\x9f\xa1-\xbf][ ]
//	|[\xf0][ ][\x80-\xbf][\x80-\xbf] |[\xf0][\x80-\xbf][ ][\x80-\xbf] |[\xf0][\x80-\xbf][\x80-\xbf][ ]
func alteredUTF8At(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	mid := func(c byte) bool { return isCont(c) && c != 0x85 && c != 0xA0 }
	switch c := b[0]; {
	case c == 0xC2 || c == 0xC3 || c == 0xC5 || c == 0xCE || c == 0xD0 || c == 0xD9:
		if b[1] == ' ' {
			return 2
		}
	case c >= 0xE0 && c <= 0xE3 && len(b) >= 3:
		if (c == 0xE2 || c == 0xE3) && b[1] == ' ' && mid(b[2]) {
			return 3
		}
		if mid(b[1]) && b[2] == ' ' {
			return 3
		}
	case c == 0xF0 && len(b) >= 4:
		spaces, conts := 0, 0
		for _, x := range b[1:4] {
			if x == ' ' {
				spaces++
			} else if isCont(x) {
				conts++
			}
		}
		if spaces == 1 && conts == 2 {
			return 4
		}
	}
	return 0
}

func alteredUTF8(b []byte) bool {
	for i := range b {
		if alteredUTF8At(b[i:]) > 0 {
			return true
		}
	}
	return false
}

// restoreByteA0 is ftfy's restore_byte_a0. A lone "Ã " before a word is kept
// as "à " (A_GRAVE_WORD_RE, with exceptions for Portuguese "às", "àquele"...),
// then every ALTERED_UTF8_RE match gets its space back as 0xA0.
func restoreByteA0(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); i++ {
		out = append(out, b[i])
		if b[i] == 0xC3 && i+1 < len(b) && b[i+1] == ' ' && !aGraveException(b[i+2:]) {
			out = append(out, 0xA0)
		}
	}
	b = out
	out = make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if n := alteredUTF8At(b[i:]); n > 0 {
			for _, c := range b[i : i+n] {
				if c == ' ' {
					c = 0xA0
				}
				out = append(out, c)
			}
			i += n
			continue
		}
		out = append(out, b[i])
		i++
	}
	return out
}

// aGraveException is the negative lookahead of A_GRAVE_WORD_RE,
// b"\xc3 (?! |quele|quela|quilo|s )": rest is what follows "\xc3 ".
func aGraveException(rest []byte) bool {
	for _, p := range []string{" ", "quele", "quela", "quilo", "s "} {
		if bytes.HasPrefix(rest, []byte(p)) {
			return true
		}
	}
	return false
}

// replaceLossySequences is ftfy's replace_lossy_sequences: UTF-8 sequences in
// which a sloppy codec had to write 0x1A (for U+FFFD), or a '?', become the
// UTF-8 bytes of U+FFFD, as does any remaining 0x1A.
func replaceLossySequences(b []byte) []byte {
	if bytes.IndexByte(b, 0x1A) < 0 && bytes.IndexByte(b, '?') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if n := lossyAt(b[i:]); n > 0 {
			out = append(out, "\uFFFD"...)
			i += n
			continue
		}
		out = append(out, b[i])
		i++
	}
	return out
}

// lossyAt returns the length of the LOSSY_UTF8_RE match at the start of b.
func lossyAt(b []byte) int {
	sub := func(i int) bool { return i < len(b) && b[i] == 0x1A }
	lost := func(i int) bool { return i < len(b) && (b[i] == 0x1A || b[i] == '?') }
	cont := func(i int) bool { return i < len(b) && (b[i] == 0x1A || isCont(b[i])) }
	in := func(i int, lo, hi byte) bool { return i < len(b) && b[i] >= lo && b[i] <= hi }
	switch {
	case in(0, 0xC2, 0xDF) && sub(1):
		return 2
	case in(0, 0xC2, 0xC3) && in(1, '?', '?'):
		return 2
	case in(0, 0xED, 0xED) && in(1, 0xA0, 0xAF) && lost(2) && in(3, 0xED, 0xED) && in(4, 0xB0, 0xBF) &&
		(lost(5) || cont(5)):
		return 6
	case in(0, 0xED, 0xED) && in(1, 0xA0, 0xAF) && (lost(2) || cont(2)) && in(3, 0xED, 0xED) &&
		in(4, 0xB0, 0xBF) && lost(5):
		return 6
	case in(0, 0xE0, 0xEF) && ((lost(1) && cont(2)) || (cont(1) && lost(2))):
		return 3
	case in(0, 0xF0, 0xF4) && ((lost(1) && cont(2) && cont(3)) || (cont(1) && lost(2) && cont(3)) ||
		(cont(1) && cont(2) && lost(3))):
		return 4
	case sub(0):
		return 1
	}
	return 0
}

// utf8Detector is ftfy's UTF8_DETECTOR_RE: runs of what look like UTF-8 lead
// and continuation bytes read through a single-byte code page.
var utf8Detector = func() *regexp.Regexp {
	const (
		first2 = "ÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßĂĆČĎĐĘĚĞİĹŃŇŐŘŞŢŮŰ" +
			"ΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩΪΫάέήίВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
		first3 = "àáâãäåæçèéêëìíîïăćčďęěĺŕΰαβγδεζηθικλμνξοабвгдежзийклмноп"
		first4 = "ðóđğπσру"
		cont   = `\x{80}-\x{bf}ĄąĽľŁłŒœŚśŞşŠšŤťŸŹźŻżŽžƒˆˇ˘˛˜˝΄΅` +
			"ΆΈΉΊΌΎΏЁЂЃЄЅІЇЈЉЊЋЌЎЏёђѓєѕіїјљњћќўџҐґ–—―‘’‚“”„†‡•…‰‹›€№™ "
	)
	return regexp.MustCompile("(?:[" + first2 + "][" + cont + "]|[" + first3 + "][" + cont + "]{2}|[" +
		first4 + "][" + cont + "]{3})+")
}()

// decodeInconsistentUTF8 is ftfy's decode_inconsistent_utf8: mojibake runs
// embedded in otherwise fine text are fixed on their own.
func decodeInconsistentUTF8(text string) string {
	n := utf8.RuneCountInString(text)
	return utf8Detector.ReplaceAllStringFunc(text, func(sub string) string {
		if utf8.RuneCountInString(sub) < n && isBad(sub) {
			return fixEncoding(sub)
		}
		return sub
	})
}
