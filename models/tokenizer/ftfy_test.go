package tokenizer

import "testing"

// Examples from ftfy's documentation and docstrings (6.x), with the default
// configuration CLIPTokenizer uses.
func TestFixTextMatchesFtfyExamples(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"âœ” No problems", "✔ No problems"},
		{"&macr;\\_(ã\u0083\u0084)_/&macr;", "¯\\_(ツ)_/¯"},
		{"Broken text&hellip; it&#x2019;s ﬂubberiﬁc!", "Broken text… it's flubberific!"},
		{"ＬＯＵＤ　ＮＯＩＳＥＳ", "LOUD NOISES"},
		{"Ｕﾀｰﾝ", "Uターン"},
		{"uÌˆnicode", "ünicode"},
		{"HTML entities &lt;3", "HTML entities <3"},
		{"<em>HTML entities &lt;3</em>", "<em>HTML entities &lt;3</em>"},
		{"\ufeffParty like\nit&rsquo;s 1999!", "Party like\nit's 1999!"},
		{"\x01\x1b[36;44mI&#x92;m blue, da ba dee da ba doo&#133;\x1b[0m", "I'm blue, da ba dee da ba doo…"},
		{"sÃ³", "só"},
		{"Ãºnico", "único"},
		{"voilÃ le travail", "voilà le travail"},
		{"This â€” should be an em dash", "This — should be an em dash"},
		{"This text is sad .â\u0081”.", "This text is sad .⁔."},
		{"not such a fan of Charlotte Brontë…”", "not such a fan of Charlotte Brontë…\""},
		{"AHÅ™, the new sofa from IKEA®", "AHÅ™, the new sofa from IKEA®"},
		{"This text was never UTF-8 at all\u0085", "This text was never UTF-8 at all…"},
		{"The more you know ðŸŒ ", "The more you know 🌠"},
		{"ﬂuﬃeﬆ", "fluffiest"},
		{"\u201chere\u2019s a test\u201d", "\"here's a test\""},
		{"Content-type: text/plain\r\n\r\nHi.", "Content-type: text/plain\n\nHi."},
		{"This is how Microsoft \r trolls Mac users", "This is how Microsoft \n trolls Mac users"},
		{"Café déjà vu — ½ 東京 🐱", "Café déjà vu — ½ 東京 🐱"},
		{"e\u0301", "é"},
	} {
		if got := fixText(c.in); got != c.want {
			t.Errorf("fixText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// UTF-8 read through each of ftfy's code pages, once and twice, as fixed by a
// Python reconstruction of ftfy 6.1's fix_text (the port agrees with it on
// thousands of generated strings).
func TestFixTextUndoesMojibake(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"CafÃ© dÃ©jÃ\u00a0 vu â\u0080\u0094 naÃ¯ve faÃ§ade", "Café déjà vu — naïve façade"},
		{"CafÃ\u0083Â© dÃ\u0083Â©jÃ\u0083Â\u00a0 vu Ã¢Â\u0080Â\u0094 naÃ\u0083Â¯ve faÃ\u0083Â§ade", "Café déjà vu — naïve façade"},
		{"CafÃ© dÃ©jÃ\u00a0 vu â€” naÃ¯ve faÃ§ade", "Café déjà vu — naïve façade"},
		{"ok CafÃ© dÃ©jÃ\u00a0 vu â€” naÃ¯ve faÃ§ade fine Ø", "ok Café déjà vu — naïve façade fine Ø"},
		{"CafÃƒÂ© dÃƒÂ©jÃƒÂ\u00a0 vu Ã¢â‚¬â€\ufffd naÃƒÂ¯ve faÃƒÂ§ade", "Café déjà vu \ufffd naïve façade"},
		{"CafГ© dГ©jГ\u00a0 vu вЂ” naГЇve faГ§ade", "Café déjà vu — naïve façade"},
		{"CafĂ© dĂ©jĂ\u00a0 vu â€” naĂŻve faĂ§ade", "Café déjà vu — naïve façade"},
		{"CafΓ© dΓ©jΓ\u00a0 vu β€” naΓ―ve faΓ§ade", "Café déjà vu — naïve façade"},
		{"Caf√© d√©j√† vu ‚Äî na√Øve fa√ßade", "Café déjà vu — naïve façade"},
		{"Caf├⌐ d├⌐j├á vu ΓÇö na├»ve fa├ºade", "Café déjà vu — naïve façade"},
		{"æ\u009d±äº¬ã\u0082¿ã\u0083¯ã\u0083¼ at night", "東京タワー at night"},
		{"Ã¦Â\u009dÂ±Ã¤ÂºÂ¬Ã£Â\u0082Â¿Ã£Â\u0083Â¯Ã£Â\u0083Â¼ at night", "東京タワー at night"},
		{"æ\ufffd±äº¬ã‚¿ãƒ¯ãƒ¼ at night", "\ufffd京タワー at night"},
	} {
		if got := fixText(c.in); got != c.want {
			t.Errorf("fixText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUnescapeHTMLMatchesFtfy(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"&lt;tag&gt;", "<tag>"},
		{"&Jscr;ohn &HilbertSpace;ancock", "𝒥ohn ℋancock"},
		{"&checkmark;", "✓"},
		{"P&eacute;rez", "Pérez"},
		{"P&EACUTE;REZ", "PÉREZ"},
		{"BUNDESSTRA&SZLIG;E", "BUNDESSTRASSE"},
		{"&ntilde; &Ntilde; &NTILDE; &nTILDE;", "ñ Ñ Ñ &nTILDE;"},
		{"this&not that", "this&not that"},
		{"&notit; &amp;amp; &#59; &#x41;&#66;", "&notit; &amp; &#59; AB"},
	} {
		if got := unescapeHTML(c.in); got != c.want {
			t.Errorf("unescapeHTML(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFixEncodingLeavesEntitiesAlone(t *testing.T) {
	if got := fixEncoding("&ATILDE;&SUP3;"); got != "&ATILDE;&SUP3;" {
		t.Errorf("fixEncoding = %q", got)
	}
}

func TestPyLowerFollowsPython(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"HELLO World", "hello world"},
		{"ΟΔΟΣ ΟΔΟΣ.", "οδος οδος."},
		{"ΣΑ", "σα"},
		{"İstanbul", "i̇stanbul"},
		{"ÜNÏCÖDÉ", "ünïcödé"},
	} {
		if got := pyLower(c.in); got != c.want {
			t.Errorf("pyLower(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestWhitespaceCleanCollapsesUnicodeSpace(t *testing.T) {
	if got := whitespaceClean("  a\t\nb\u3000\u00a0c  "); got != "a b c" {
		t.Errorf("whitespaceClean = %q, want %q", got, "a b c")
	}
}
