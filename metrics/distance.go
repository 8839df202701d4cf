package metrics

import (
	"fmt"
	"math"
)

// RMSE is the root mean squared difference of two equally long slices,
// sqrt(mean((a-b)²)), in float64.
func RMSE(a, b []float32) (float64, error) {
	mse, err := meanSquaredError(a, b, "rmse")
	if err != nil {
		return 0, err
	}
	return math.Sqrt(mse), nil
}

// PSNR is the peak signal-to-noise ratio 10·log10(dataRange² / mse) of b
// against a, in decibels (dataRange is the span of the values: 1 for
// pixels in [0, 1]); identical slices give +Inf.
func PSNR(a, b []float32, dataRange float64) (float64, error) {
	mse, err := meanSquaredError(a, b, "psnr")
	if err != nil {
		return 0, err
	}
	return 10 * math.Log10(dataRange*dataRange/mse), nil
}

func meanSquaredError(a, b []float32, what string) (float64, error) {
	if len(a) != len(b) || len(a) == 0 {
		return 0, fmt.Errorf("%s: %d and %d values, want the same positive number", what, len(a), len(b))
	}
	var sse float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		sse += d * d
	}
	return sse / float64(len(a)), nil
}

// PromptAccuracy is the fraction of rows of logits [len(want), classes]
// whose argmax is want[i] (the class the prompt of sample i names); ties go
// to the lower class, as torch.argmax does.
func PromptAccuracy(logits []float32, classes int, want []int) (float64, error) {
	if classes <= 0 || len(want) == 0 || len(logits) != len(want)*classes {
		return 0, fmt.Errorf("prompt accuracy: %d logits for %d samples of %d classes", len(logits), len(want), classes)
	}
	hits := 0
	for i, c := range want {
		if c < 0 || c >= classes {
			return 0, fmt.Errorf("prompt accuracy: sample %d wants class %d of %d", i, c, classes)
		}
		if Argmax(logits[i*classes:(i+1)*classes]) == c {
			hits++
		}
	}
	return float64(hits) / float64(len(want)), nil
}

// Argmax is the index of the largest value (the first of equal ones).
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
