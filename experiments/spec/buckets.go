package spec

import "github.com/gomlx/gomlx/core/graph"

// MaxBuckets is the most training sizes a run may have: the compiled step is kept per input shape,
// one per bucket, and GoMLX keeps at most this many shapes per program before refusing a new one.
const MaxBuckets = graph.DefaultExecMaxCacheSize

// buckets checks data.buckets (through the datasets package's own parsing) and that every bucket's
// sides are multiples of the VAE factor.
func (c *checker) buckets() {
	if len(c.s.Data.Buckets) == 0 {
		return
	}
	c.imageSize("data.bucket_step", false)
	sizes, err := c.s.Data.Config.TrainingSizes()
	if err != nil {
		c.fail([]string{"data.buckets"}, "%s: %v", c.kv("data.buckets"), err)
		return
	}
	if len(sizes) > MaxBuckets {
		c.fail([]string{"data.buckets"}, "%s gives %d buckets, more than %d (one compiled step per bucket)", c.kv("data.buckets"), len(sizes), MaxBuckets)
	}
	for _, b := range sizes {
		if b.W%VAEFactor != 0 || b.H%VAEFactor != 0 {
			c.fail([]string{"data.buckets"}, "%s: bucket %v has a side that is not a multiple of %d (the VAE's downsampling factor)", c.kv("data.buckets"), b, VAEFactor)
		}
	}
}
