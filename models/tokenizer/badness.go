package tokenizer

import (
	"regexp"
	"strings"
)

// isBad is ftfy.badness.is_bad: whether text holds a character sequence that is
// far more likely mojibake than intended. The classes and the pattern follow
// ftfy 6.1's MOJIBAKE_CATEGORIES and BADNESS_RE.
func isBad(text string) bool { return badness.MatchString(text) }

var badness = func() *regexp.Regexp {
	const (
		c1         = `\x{80}-\x{9f}`
		bad        = "¦¤¨¬¯¶§¸ƒˆˇ˘˛˜†‡‰⌐◊\uFFFDªº"
		currency   = "¢£¥₧€"
		startPunct = "¡«¿©΄΅‘‚“„•‹\uF8FF"
		endPunct   = "®»˝”›™"
		numeric    = "²³¹±¼½¾×µ÷⁄∂∆∏∑√∞∩∫≈≠≡≤≥№"
		kaomoji    = "Ò-ÖÙ-Üò-öø-üŐ°"
		upperAcc   = "À-ÑØÜÝĂĄĆČĎĐĘĚĞİĹĽŁŃŇŒŘŚŞŠŢŤŮŰŸŹŻŽҐ"
		lowerAcc   = "ßà-ñăąćčďđęěğĺľłœŕśşšťüźżžґﬁﬂ"
		upperCom   = "ÞΑ-ΩΆΈΉΊΌΎΏΪΫЁ-Я"
		lowerCom   = "α-ωάέήίΰа-џ"
		box        = "│┌┐┘├┤┬┼═-╬▀▄█▌▐░▒▓"
		common     = "\u00a0\u00ad·´–—―…’"
		// Python's \s and \w on str.
		space = `\t\n\x{0b}\f\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}`
		word  = `\p{L}\p{N}_`
	)
	cls := func(parts ...string) string { return "[" + strings.Join(parts, "") + "]" }
	arabic := cls(common, currency, bad, numeric, startPunct, "ŸŠ®°µ»")
	alternatives := []string{
		cls(c1),
		cls(bad, lowerAcc, upperAcc, box, startPunct, endPunct, currency, numeric) + cls(bad),
		`[a-zA-Z]` + cls(lowerCom, upperCom) + cls(bad),
		cls(bad) + cls(lowerAcc, upperAcc, box, startPunct, endPunct, currency, numeric),
		cls(lowerAcc, lowerCom, box, endPunct, currency, numeric) + cls(upperAcc),
		cls(box, endPunct, currency, numeric) + cls(lowerAcc),
		cls(lowerAcc, box, endPunct) + cls(currency),
		cls(space) + cls(upperAcc) + cls(currency),
		cls(upperAcc, box) + cls(numeric),
		cls(lowerAcc, upperAcc, box, currency, endPunct) + cls(startPunct) + cls(numeric),
		cls(lowerAcc, upperAcc, currency, numeric, box) + cls(endPunct) + cls(startPunct),
		cls(currency, numeric, box) + cls(startPunct),
		`[a-z]` + cls(upperAcc) + cls(startPunct, currency),
		cls(box) + cls(kaomoji),
		cls(lowerAcc, upperAcc, currency, numeric, startPunct, endPunct) + cls(box),
		cls(box) + cls(endPunct),
		cls(lowerAcc, upperAcc) + cls(endPunct) + cls(word),
		// The ligature œ when not followed by an unaccented Latin letter.
		`[Œœ][^A-Za-z]`,
		// Common Windows-1252 two-character mojibake.
		"[ÂÃÎÐ]" + cls("€Šš¢£Ÿž\u00a0\u00ad®©°·»", startPunct, endPunct, "–—´"),
		"×[²³]",
		// Windows-1252 mojibake of Arabic, four characters long.
		"[ØÙ]" + arabic + "[ØÙ]" + arabic,
		// Windows-1252 mojibake starting South Asian letters.
		"à[²µ¹¼½¾]",
		// MacRoman mojibake.
		"√[±∂†≠®™´≤≥¥µø]",
		"≈[°¢]",
		"‚Ä[ìîïòôúùû†°¢π]",
		"‚[âó][àä°ê]",
		// Windows-1251 mojibake of U+2000 punctuation, Latin-1 and Cyrillic.
		"вЂ",
		"[ВГРС]" + cls(c1, bad, startPunct, endPunct, currency, "°µ") + "[ВГРС]",
		"ГўВЂВ.[A-Za-z ]",
		// Windows-1252 encodings of 'à', 'á' and U+00A0.
		"Ã[\u00a0¡]",
		"[a-z]" + cls(space) + "?[ÃÂ][ ]",
		"^[ÃÂ][ ]",
		// Â standing before the character it was the lead byte of.
		cls("a-z.,?!", endPunct) + "Â" + cls(" ", startPunct, endPunct),
		// Windows-1253 mojibake of U+2000 punctuation, Latin-1 and Greek.
		"β€[™\u00a0Ά\u00ad®°]",
		"[ΒΓΞΟ]" + cls(c1, bad, startPunct, endPunct, currency, "°") + "[ΒΓΞΟ]",
	}
	return regexp.MustCompile(strings.Join(alternatives, "|"))
}()
