package runner

import (
	"fmt"

	"github.com/golcm/golcm/datasets"
)

// checkTrainingSizes checks that every size batches come in (the buckets, or the square resolution)
// fits the model: each side a multiple of factor, the VAE factor times the UNet's downsampling.
// Each size compiles the step once (the compiled graphs are kept per input shape).
func checkTrainingSizes(data datasets.Config, factor int, model string) error {
	sizes, err := data.TrainingSizes()
	if err != nil {
		return fmt.Errorf("data.buckets: %w", err)
	}
	for _, b := range sizes {
		if b.W%factor != 0 || b.H%factor != 0 {
			key := "data.buckets"
			if len(data.Buckets) == 0 {
				key = "data.resolution"
			}
			return fmt.Errorf("%s: training size %v is not a multiple of %d (VAE factor × UNet downsampling of %s)", key, b, factor, model)
		}
	}
	return nil
}
