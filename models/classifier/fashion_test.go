package classifier

import (
	"context"
	"os"
	"testing"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
)

// fashionDir is where Debian's dataset-fashion-mnist installs the data.
const fashionDir = "/usr/share/datasets/fashion-mnist/"

// TestClassifierLearnsFashionMNIST: 200 steps of 32 images from the first
// 6000 of the training split (a twentieth of the default run) already
// classify held-out test images far above chance (10%).
func TestClassifierLearnsFashionMNIST(t *testing.T) {
	images := fashionDir + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(images); err != nil {
		t.Skipf("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): %v", err)
	}
	trainSet, err := ReadIDX(images, LabelsBeside(images), 32, 6000)
	if err != nil {
		t.Fatal(err)
	}
	test := fashionDir + "t10k-images-idx3-ubyte.gz"
	testSet, err := ReadIDX(test, LabelsBeside(test), 32, 2000)
	if err != nil {
		t.Fatal(err)
	}
	b, choice, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	m, err := New(&cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultTrainOptions()
	o.Steps, o.BatchSize, o.NN = 200, 32, nn.ForBackend(choice.Name())
	if _, err := Train(context.Background(), b, m, trainSet, o); err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(b, m, o.NN, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Finalize()
	acc, err := r.Accuracy(testSet)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("test accuracy %.3f after 200 steps", acc)
	if acc < 0.7 {
		t.Errorf("test accuracy %.3f after 200 steps, want at least 0.7", acc)
	}
}
