package tokenizer

import (
	"html"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// This file ports ftfy.fix_text (ftfy 6.1.1) with its default TextFixerConfig,
// which is what CLIPTokenizer calls when ftfy is installed. Steps, in ftfy's
// order, repeated on each line until nothing changes:
//
//	unescape_html ("auto": off from the first line that contains '<' on),
//	fix_encoding (mojibake, see mojibake.go), fix_c1_controls,
//	fix_latin_ligatures, fix_character_width, uncurl_quotes, fix_line_breaks,
//	fix_surrogates (nothing to do on Go strings), remove_terminal_escapes,
//	remove_control_chars, NFC normalization.
//
// Curly quotes become straight ones, but NFC keeps characters such as '½' and
// '—' as they are.

// fixText is ftfy.fix_text: text is fixed one line ("\n" included) at a time.
func fixText(text string) string {
	if plainASCII(text) {
		return text
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	unescape := true
	var out strings.Builder
	out.Grow(len(text))
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line = text[:i+1]
		}
		text = text[len(line):]
		if unescape && strings.Contains(line, "<") {
			unescape = false
		}
		out.WriteString(fixSegment(line, unescape))
	}
	return out.String()
}

// plainASCII reports whether fix_text leaves s unchanged for sure: printable
// ASCII, tabs, newlines and form feeds, with no '&' that could start an entity.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x7F || c == '&' || (c < 0x20 && c != '\t' && c != '\n' && c != '\f') {
			return false
		}
	}
	return true
}

// fixSegment is ftfy.fix_and_explain on one line.
func fixSegment(text string, unescape bool) string {
	for {
		orig := text
		if unescape {
			text = unescapeHTML(text)
		}
		text = fixEncoding(text)
		text = fixCharacters(text)
		text = removeEscapesAndControls(text)
		if !norm.NFC.IsNormalString(text) {
			text = norm.NFC.String(text)
		}
		if text == orig {
			return text
		}
	}
}

// fixCharacters applies, in one pass, the per-character fixers that ftfy runs
// one after another: fix_c1_controls (C1 controls read as Windows-1252),
// fix_latin_ligatures, fix_character_width, uncurl_quotes and fix_line_breaks.
// None of them produces input for an earlier one, except that C1 controls and
// ligatures can produce curly quotes, which are uncurled here too.
func fixCharacters(text string) string {
	changes := false
	for _, r := range text {
		if r == '\r' || (r >= 0x80 && r <= 0x9F) || latinLigatures[r] != "" || widthRune(r) != "" ||
			uncurl(r) != r || r == 0x2028 || r == 0x2029 {
			changes = true
			break
		}
	}
	if !changes {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		i += n
		if r >= 0x80 && r <= 0x9F {
			r = sloppyWindows1252.decode[r]
		}
		switch {
		case latinLigatures[r] != "":
			for _, l := range latinLigatures[r] {
				b.WriteRune(uncurl(l))
			}
		case widthRune(r) != "":
			b.WriteString(widthRune(r))
		case r == '\r':
			b.WriteByte('\n')
			if i < len(text) && text[i] == '\n' {
				i++
			}
		case r == 0x2028 || r == 0x2029: // U+0085 became '…' above, as in ftfy
			b.WriteByte('\n')
		default:
			b.WriteRune(uncurl(r))
		}
	}
	return b.String()
}

// latinLigatures is ftfy's LIGATURES table.
var latinLigatures = map[rune]string{
	'Ĳ': "IJ", 'ĳ': "ij", 'ŉ': "ʼn", 'Ǳ': "DZ", 'ǲ': "Dz", 'ǳ': "dz", 'Ǆ': "DŽ", 'ǅ': "Dž",
	'ǆ': "dž", 'Ǉ': "LJ", 'ǈ': "Lj", 'ǉ': "lj", 'Ǌ': "NJ", 'ǋ': "Nj", 'ǌ': "nj",
	'ﬀ': "ff", 'ﬁ': "fi", 'ﬂ': "fl", 'ﬃ': "ffi", 'ﬄ': "ffl", 'ﬅ': "ſt", 'ﬆ': "st",
}

// widthRune is ftfy's WIDTH_MAP: U+3000 becomes a space and the halfwidth and
// fullwidth forms U+FF01..U+FFEF become their NFKC form. It returns "" for
// characters that stay.
func widthRune(r rune) string {
	if r == 0x3000 {
		return " "
	}
	if r < 0xFF01 || r > 0xFFEF {
		return ""
	}
	var buf [4]byte
	s := string(buf[:utf8.EncodeRune(buf[:], r)])
	if k := norm.NFKC.String(s); k != s {
		return k
	}
	return ""
}

// uncurl is uncurl_quotes: U+02BC and U+2018..U+201B become "'", U+201C..U+201F '"'.
func uncurl(r rune) rune {
	switch {
	case r == 0x2BC || (r >= 0x2018 && r <= 0x201B):
		return '\''
	case r >= 0x201C && r <= 0x201F:
		return '"'
	}
	return r
}

// removeEscapesAndControls is remove_terminal_escapes (ANSI "\x1b[" digits or
// ';' then a letter) followed by remove_control_chars (C0 controls other than
// \t \n \f \r, DEL, U+206A..U+206F, U+FEFF and U+FFF9..U+FFFC).
func removeEscapesAndControls(text string) string {
	if !strings.ContainsFunc(text, isRemovedControl) {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		if n := ansiEscape(text[i:]); n > 0 {
			i += n
			continue
		}
		r, n := utf8.DecodeRuneInString(text[i:])
		i += n
		if !isRemovedControl(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isRemovedControl(r rune) bool {
	return r <= 0x08 || r == 0x0B || (r >= 0x0E && r <= 0x1F) || r == 0x7F ||
		(r >= 0x206A && r <= 0x206F) || r == 0xFEFF || (r >= 0xFFF9 && r <= 0xFFFC)
}

// ansiEscape returns the length of the match of ftfy's ANSI_RE
// "\033\[((?:\d|;)*)([a-zA-Z])" at the start of s, or 0. \d is any Nd digit.
func ansiEscape(s string) int {
	if !strings.HasPrefix(s, "\x1b[") {
		return 0
	}
	for i := 2; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == ';' || unicode.IsDigit(r):
			i += n
		case (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
			return i + 1
		default:
			return 0
		}
	}
	return 0
}

// unescapeHTML is ftfy's unescape_html: every match of &#?[0-9A-Za-z]{1,24};
// that is a complete HTML5 entity (or an all-caps spelling of a lower-case one,
// such as &EACUTE;) or a complete numeric character reference is decoded; other
// matches stay as they are.
func unescapeHTML(text string) string {
	if !strings.Contains(text, "&") {
		return text
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(text, '&')
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		b.WriteString(text[:i])
		text = text[i:]
		n := entityLength(text)
		if n == 0 {
			b.WriteByte('&')
			text = text[1:]
			continue
		}
		b.WriteString(decodeEntity(text[:n]))
		text = text[n:]
	}
}

// entityLength returns the length of the HTML_ENTITY_RE match at the start of
// s (which starts with '&'), or 0.
func entityLength(s string) int {
	i := 1
	if i < len(s) && s[i] == '#' {
		i++
	}
	start := i
	for i < len(s) && i-start < 24 && isASCIIAlnum(s[i]) {
		i++
	}
	if i == start || i >= len(s) || s[i] != ';' {
		return 0
	}
	return i + 1
}

func isASCIIAlnum(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// decodeEntity is ftfy's _unescape_fixup on one match.
func decodeEntity(m string) string {
	if m[1] == '#' {
		if s, ok := numericCharRef(m[2 : len(m)-1]); ok && !strings.Contains(s, ";") {
			return s
		}
		return m
	}
	if s, ok := namedEntity(m); ok {
		return s
	}
	// An all-caps spelling of a lower-case entity name, when the caps form is
	// not itself an entity: "&EACUTE;" is "É".
	name := m[1 : len(m)-1]
	if strings.ToUpper(name) != name || html.UnescapeString(m) != m {
		return m
	}
	if s, ok := namedEntity("&" + strings.ToLower(name) + ";"); ok {
		return pyUpper(s)
	}
	return m
}

// namedEntity decodes m ("&name;") if name; is an HTML5 entity.
func namedEntity(m string) (string, bool) {
	if s, ok := entitiesMissingInGo[m]; ok {
		return s, true
	}
	s := html.UnescapeString(m)
	if s == m || (strings.HasSuffix(s, ";") && m != "&semi;") {
		return "", false // not an entity, or only a legacy prefix such as &not of &notit;
	}
	return s, true
}

// entitiesMissingInGo are the HTML5 entities that Python's
// html.entities.html5 has and Go's html package does not decode.
var entitiesMissingInGo = map[string]string{"&nGt;": "≫\u20d2", "&nLt;": "≪\u20d2"}

// numericCharRef is Python's html.unescape of "&#digits;" or "&#xhex;" (digits
// given without "&#" and ";"); ok is false when it would not decode all of it.
func numericCharRef(digits string) (string, bool) {
	base := 10
	if digits[0] == 'x' || digits[0] == 'X' {
		base, digits = 16, digits[1:]
	}
	if digits == "" {
		return "", false
	}
	num := 0
	for i := 0; i < len(digits); i++ {
		d, err := strconv.ParseUint(digits[i:i+1], base, 8)
		if err != nil {
			return "", false
		}
		if num <= unicode.MaxRune {
			num = num*base + int(d)
		}
	}
	switch {
	case num == 0:
		return "\uFFFD", true
	case num == 0x0D:
		return "\r", true
	case num >= 0x80 && num <= 0x9F:
		return string(sloppyWindows1252.decode[num]), true
	case (num >= 0xD800 && num <= 0xDFFF) || num > unicode.MaxRune:
		return "\uFFFD", true
	case (num >= 0x1 && num <= 0x8) || (num >= 0xE && num <= 0x1F) || num == 0x7F || num == 0xB ||
		(num >= 0xFDD0 && num <= 0xFDEF) || num&0xFFFE == 0xFFFE:
		return "", true // html.unescape drops these invalid code points
	}
	return string(rune(num)), true
}

// pyUpper is Python's str.upper for the values of HTML entities: full case
// mapping for the few characters whose capital is two letters.
func pyUpper(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case 'ß':
			b.WriteString("SS")
		case 'ŉ':
			b.WriteString("ʼN")
		case 'ﬀ':
			b.WriteString("FF")
		case 'ﬁ':
			b.WriteString("FI")
		case 'ﬂ':
			b.WriteString("FL")
		case 'ﬃ':
			b.WriteString("FFI")
		case 'ﬄ':
			b.WriteString("FFL")
		case 'ﬅ', 'ﬆ':
			b.WriteString("ST")
		default:
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}
