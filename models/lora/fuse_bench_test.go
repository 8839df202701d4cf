package lora

import "testing"

func BenchmarkAddLowRank(b *testing.B) {
	out, r, cols := 1280, 64, 1280*9
	w, bm, a := make([]float32, out*cols), make([]float32, out*r), make([]float32, r*cols)
	for i := range bm {
		bm[i] = 1
	}
	for b.Loop() {
		addLowRank(w, bm, a, out, r, cols, 1)
	}
}
