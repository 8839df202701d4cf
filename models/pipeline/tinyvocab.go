package pipeline

import (
	"fmt"
	"strings"

	"github.com/golcm/golcm/models/tokenizer"
)

// This file makes the tiny pipeline's tokenizer: a CLIP-style byte-level BPE
// vocabulary of golcm's own, small enough that the tiny text encoder's
// token embedding stays small. It is built the way openai/CLIP's
// SimpleTokenizer builds its vocabulary from merges — the 256 byte symbols
// (bytes_to_unicode), the same with "</w>", one token per merge, then the
// start and end of text — with merges learned here by plain BPE from a fixed
// list of common caption words. Every byte has a token, so any text encodes.

// tinyMerges bounds the merges the tiny tokenizer learns; captionWords
// needs 705 to make every word one token.
const tinyMerges = 1000

// captionWords is the fixed corpus the tiny tokenizer's merges are learned
// from: words common in image captions and prompts.
const captionWords = `
a an the of in on at with and or by for from to under over near behind between inside outside above below
photo photograph picture image painting drawing sketch illustration render portrait landscape closeup close up
view shot still life art artwork poster cartoon anime digital oil watercolor pencil charcoal ink pastel
cat cats dog dogs horse horses bird birds fish cow sheep lion tiger bear wolf fox rabbit mouse owl eagle
duck chicken elephant monkey deer frog snake butterfly bee animal animals pet puppy kitten
man woman men women person people boy girl child children baby family friends crowd astronaut knight
king queen robot cyborg wizard soldier farmer chef doctor student teacher player dancer
house houses building city street road bridge tower castle church temple village town room kitchen
garden park forest tree trees flower flowers grass field mountain mountains hill river lake sea ocean
beach island desert snow rain sky cloud clouds sun moon star stars night day morning evening sunset sunrise
water fire ice rock stone sand wood metal glass gold silver
car cars bus train truck bike bicycle boat ship plane airplane rocket table chair bed window door
book books cup plate bowl food fruit apple banana orange cake pizza bread coffee tea
red green blue yellow white black brown pink purple gray grey dark light bright colorful
big small large little tall long short old new young beautiful pretty cute happy sad
detailed highly sharp focus soft lighting cinematic dramatic realistic photorealistic
style masterpiece best quality high resolution ultra wide angle lens camera
sitting standing running walking flying swimming riding eating drinking playing reading holding looking
wearing hat dress shirt jacket glasses
one two three four five many some several group pair
is are was were has have its their his her this that there
`

// byteSymbols is GPT-2/CLIP's bytes_to_unicode: a printable rune for every
// byte, in the order the vocabulary lists them (the printable Latin-1 bytes
// as themselves first, then the rest mapped to 256 and up).
func byteSymbols() (order []byte, symbol [256]string) {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	for b := range 256 {
		if printable(b) {
			order = append(order, byte(b))
			symbol[b] = string(rune(b))
		}
	}
	n := 0
	for b := range 256 {
		if !printable(b) {
			order = append(order, byte(b))
			symbol[b] = string(rune(256 + n))
			n++
		}
	}
	return order, symbol
}

// tinyTokenizer builds the tiny pipeline's tokenizer (deterministic: it
// depends on nothing but captionWords).
func tinyTokenizer() (*tokenizer.Tokenizer, error) {
	order, symbol := byteSymbols()
	vocab := map[string]int{}
	add := func(tok string) {
		if _, ok := vocab[tok]; !ok {
			vocab[tok] = len(vocab)
		}
	}
	for _, b := range order {
		add(symbol[b])
	}
	for _, b := range order {
		add(symbol[b] + "</w>")
	}
	merges := learnMerges(strings.Fields(captionWords), symbol, tinyMerges)
	for _, m := range merges {
		add(m[0] + m[1])
	}
	add(tokenizer.DefaultBOS)
	add(tokenizer.DefaultEOS)
	tok, err := tokenizer.New(vocab, merges)
	if err != nil {
		return nil, fmt.Errorf("tiny tokenizer: %w", err)
	}
	return tok, nil
}

// learnMerges is byte-pair encoding training (Sennrich et al.) on distinct
// words, each split into byte symbols with "</w>" on the last: repeatedly
// merge the most frequent adjacent pair (ties to the smallest pair in string
// order, so the result never depends on map order) until every word is one
// symbol or maxMerges merges are made.
func learnMerges(words []string, symbol [256]string, maxMerges int) [][2]string {
	seen := map[string]bool{}
	var split [][]string
	for _, w := range words {
		if seen[w] {
			continue
		}
		seen[w] = true
		syms := make([]string, len(w))
		for i := range len(w) {
			syms[i] = symbol[w[i]]
		}
		syms[len(syms)-1] += "</w>"
		split = append(split, syms)
	}
	var merges [][2]string
	for len(merges) < maxMerges {
		counts := map[[2]string]int{}
		for _, syms := range split {
			for i := 0; i+1 < len(syms); i++ {
				counts[[2]string{syms[i], syms[i+1]}]++
			}
		}
		var best [2]string
		bestN := 0
		for pair, n := range counts {
			if n > bestN || (n == bestN && less(pair, best)) {
				best, bestN = pair, n
			}
		}
		if bestN == 0 {
			break
		}
		merges = append(merges, best)
		joined := best[0] + best[1]
		for k, syms := range split {
			out := syms[:0:0]
			for i := 0; i < len(syms); i++ {
				if i+1 < len(syms) && syms[i] == best[0] && syms[i+1] == best[1] {
					out = append(out, joined)
					i++
					continue
				}
				out = append(out, syms[i])
			}
			split[k] = out
		}
	}
	return merges
}

func less(a, b [2]string) bool {
	if a[0] != b[0] {
		return a[0] < b[0]
	}
	return a[1] < b[1]
}
