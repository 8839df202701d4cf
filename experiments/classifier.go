package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/classifier"
	"github.com/golcm/golcm/models/nn"
)

// fashionDir is where Debian's dataset-fashion-mnist installs the data.
const fashionDir = "/usr/share/datasets/fashion-mnist/"

func runClassifier(args []string) error {
	fs := flag.NewFlagSet("classifier", flag.ContinueOnError)
	trainImages := fs.String("train", fashionDir+"train-images-idx3-ubyte.gz", "IDX file of the training images (gzip or plain)")
	trainLabels := fs.String("train-labels", "", "IDX file of the training labels (default: -train with images-idx3 replaced by labels-idx1)")
	testImages := fs.String("test", fashionDir+"t10k-images-idx3-ubyte.gz", "IDX file of the test images the accuracy is measured on")
	testLabels := fs.String("test-labels", "", "IDX file of the test labels (default: -test with images-idx3 replaced by labels-idx1)")
	out := fs.String("out", "", "folder to save the classifier into (config.json, model.safetensors), replaced whole at the end (required)")
	defaults, arch := classifier.DefaultTrainOptions(), classifier.DefaultConfig()
	steps := fs.Int("steps", defaults.Steps, "optimizer steps")
	batch := fs.Int("batch", defaults.BatchSize, "images per step")
	lr := fs.Float64("lr", defaults.LR, "peak learning rate (AdamW, half-cosine decay to 0)")
	wd := fs.Float64("weight-decay", defaults.WeightDecay, "AdamW decoupled weight decay")
	seed := fs.Uint64("seed", 0, "seed of the initial weights and the data order")
	size := fs.Int("size", arch.ImageSize, "side of the classifier's input: images are centred on a black square this big (32: as data convert pads Fashion-MNIST)")
	channels := slices.Clone(arch.Channels)
	fs.Var(intList{&channels}, "channels", "output channels of the stride-2 3×3 convolutions, comma-separated")
	features := fs.Int("features", arch.FeatureDim, "width of the penultimate (feature) layer")
	labels := fs.String("labels", strings.Join(arch.Labels, ","), "class names in label order, comma-separated (default: Fashion-MNIST's)")
	limit := fs.Int("limit", 0, "use only the first N training images (0: all)")
	backendName := fs.String("backend", "", "backend to use (default: $GOMLX_BACKEND, else XLA when a PJRT plugin is installed, else go)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: go run ./experiments classifier -out DIR [-train IMAGES.idx3 -test IMAGES.idx3] [flags]

Trains the small CNN classifier the eval command uses as its feature extractor (Fréchet distance,
prompt accuracy) on labelled IDX images (default: Debian's dataset-fashion-mnist), reports its test
accuracy, and saves it.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("classifier: unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return fmt.Errorf("classifier: -out is required")
	}
	cfg := arch
	cfg.ImageSize, cfg.FeatureDim, cfg.Channels, cfg.Labels = *size, *features, channels, strings.Split(*labels, ",")
	m, err := classifier.New(&cfg, *seed)
	if err != nil {
		return err
	}
	if *trainLabels == "" {
		*trainLabels = classifier.LabelsBeside(*trainImages)
	}
	if *testLabels == "" {
		*testLabels = classifier.LabelsBeside(*testImages)
	}
	trainSet, err := classifier.ReadIDX(*trainImages, *trainLabels, cfg.ImageSize, *limit)
	if err != nil {
		return err
	}
	testSet, err := classifier.ReadIDX(*testImages, *testLabels, cfg.ImageSize, 0)
	if err != nil {
		return err
	}
	b, choice, err := backend.Default(*backendName)
	if err != nil {
		return err
	}
	fmt.Println(backend.Describe(b, choice))
	fmt.Printf("classifier: %d training and %d test images of %d×%d, %d parameters\n",
		trainSet.Len(), testSet.Len(), cfg.ImageSize, cfg.ImageSize, m.Weights.NumParameters())

	// Interrupted, nothing is saved: the folder is written only at the end.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := nn.ForBackend(choice.Name())
	o := classifier.TrainOptions{Steps: *steps, BatchSize: *batch, LR: *lr, WeightDecay: *wd, Seed: *seed, NN: opts, Progress: os.Stderr}
	start := time.Now()
	loss, err := classifier.Train(ctx, b, m, trainSet, o)
	if err != nil {
		return err
	}
	trained := time.Since(start)
	r, err := classifier.NewRunner(b, m, opts, 0)
	if err != nil {
		return err
	}
	defer r.Finalize()
	acc, err := r.Accuracy(testSet)
	if err != nil {
		return err
	}
	fmt.Printf("classifier: trained %d steps in %.0fs (final loss %.4f); test accuracy %.2f%% on %d images\n",
		*steps, trained.Seconds(), loss, 100*acc, testSet.Len())
	if err := m.Save(*out); err != nil {
		return err
	}
	fmt.Println("wrote", *out)
	return nil
}

func intsString(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ",")
}

// parseInts reads a comma-separated list of integers ("" is empty).
func parseInts(s string) ([]int, error) {
	var out []int
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		var x int
		if _, err := fmt.Sscan(strings.TrimSpace(part), &x); err != nil {
			return nil, fmt.Errorf("%q is not an integer", part)
		}
		out = append(out, x)
	}
	return out, nil
}
