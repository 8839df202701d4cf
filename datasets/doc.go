// Package datasets feeds image–caption batches to distillation: it reads WebDataset tar shards (local
// files, globs, brace ranges, `pipe:` commands, http(s) URLs), Parquet files (image bytes in a binary
// column or a Hugging Face `{bytes, path}` struct, caption in a string or list-of-strings column) and
// image folders (`metadata.jsonl` or a `.txt` beside each image), and converts MNIST-style IDX
// images and labels (Fashion-MNIST) into captioned WebDataset shards; decodes JPEG, PNG and WebP;
// resizes, crops, flips and normalises exactly as the diffusers training scripts do with PIL and torchvision; and
// shuffles, decodes in parallel and batches deterministically for a seed, with a Position that a
// checkpoint saves and a resumed run restores without repeating or skipping a sample.
//
// Bad data never stops a run: every sample or shard that is skipped is counted by reason in Stats, and
// the loader fails, with those counts, only when nothing usable arrives for MaxConsecutiveDrops samples
// or a whole epoch yields nothing.
//
// The package is pure Go: it depends on the standard library, golang.org/x/image (WebP decoding, the
// inspect grid's font) and github.com/parquet-go/parquet-go, and not on GoMLX.
//
// Files: config.go (Config, which is also an experiment's [data] section, and DefaultConfig), sources.go (shard specs, pipe: and http streams),
// webdataset.go, parquet.go, imagefolder.go (one reader per format), sample.go (raw samples, filters,
// per-sample randomness), decode.go, resize.go and transform.go (pixels), reader.go (epochs, shard
// order, shuffle buffer, resume), loader.go (workers, batches), position.go, stats.go (drop counts),
// inspect.go and convert.go (the library side of `data inspect` and `data convert`), cachepass.go
// (the one pass over every sample, both flips and every caption, that `data cache` encodes; training
// from the cache walks the data with NewPlacementsAt), idx.go (IDX
// files and their conversion), synthetic.go (captioned shapes to train on without downloaded data:
// data.generate).
package datasets
