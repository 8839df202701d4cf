package main

import (
	"slices"
	"testing"
)

// TestWithDonationPairsStepRows: -donation both follows each step row with
// its no-donation twin, off keeps only the twins, on changes nothing, and
// forward rows are never doubled; a bad value is an error.
func TestWithDonationPairsStepRows(t *testing.T) {
	rows := []benchCase{{preset: "small", kind: kindForward}, {preset: "small", kind: kindStep}, {preset: "small", kind: kindLoRA}}
	whats := func(cs []benchCase) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.what())
		}
		return out
	}
	want := map[string][]string{
		"on":   {"forward", "distill step (full)", "distill step (lora)"},
		"off":  {"forward", "distill step (full,nodonate)", "distill step (lora,nodonate)"},
		"both": {"forward", "distill step (full)", "distill step (full,nodonate)", "distill step (lora)", "distill step (lora,nodonate)"},
	}
	for mode, w := range want {
		got, err := withDonation(rows, mode)
		if err != nil || !slices.Equal(whats(got), w) {
			t.Errorf("-donation %s: rows %q (%v), want %q", mode, whats(got), err, w)
		}
	}
	if _, err := withDonation(rows, "maybe"); err == nil {
		t.Error("-donation maybe: no error")
	}
}
