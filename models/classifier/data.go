package classifier

import (
	"fmt"
	"strings"

	"github.com/golcm/golcm/datasets"
)

// Dataset is a set of labelled images in the classifier's input layout:
// Images [N, Channels, Size, Size] with values in [-1, 1].
type Dataset struct {
	Images         []float32
	Labels         []int
	Channels, Size int
}

// Len is the number of images.
func (d *Dataset) Len() int { return len(d.Labels) }

// pixel maps a byte value to the classifier's [-1, 1] range, as the VAE's
// input is normalised (v/255·2 - 1).
func pixel(v uint8) float32 { return 2*(float32(v)/255) - 1 }

// ReadIDX reads an IDX pair of grayscale images [N, rows, cols] and labels
// [N] (MNIST's and Fashion-MNIST's format; gzip-compressed or plain) and
// centres each image on a black size×size square, as golcm's data convert
// pads Fashion-MNIST's 28×28 images to 32×32. limit > 0 keeps the first
// limit images.
func ReadIDX(imagesPath, labelsPath string, size, limit int) (*Dataset, error) {
	images, err := datasets.ReadIDX(imagesPath)
	if err != nil {
		return nil, err
	}
	labelArray, err := datasets.ReadIDX(labelsPath)
	if err != nil {
		return nil, err
	}
	dims, ldims, pix, labels := images.Dims, labelArray.Dims, images.Data, labelArray.Data
	if len(dims) != 3 || len(ldims) != 1 || ldims[0] != dims[0] {
		return nil, fmt.Errorf("idx: images %s are %v and labels %s %v, want [N, rows, cols] and [N]", imagesPath, dims, labelsPath, ldims)
	}
	n, rows, cols := dims[0], dims[1], dims[2]
	if rows > size || cols > size {
		return nil, fmt.Errorf("idx %s: %d×%d images do not fit in %d×%d", imagesPath, rows, cols, size, size)
	}
	if limit > 0 {
		n = min(n, limit)
	}
	d := &Dataset{Images: make([]float32, n*size*size), Labels: make([]int, n), Channels: 1, Size: size}
	top, left := (size-rows)/2, (size-cols)/2
	for i := range n {
		d.Labels[i] = int(labels[i])
		img := d.Images[i*size*size : (i+1)*size*size]
		for j := range img {
			img[j] = pixel(0)
		}
		for y := range rows {
			for x := range cols {
				img[(top+y)*size+left+x] = pixel(pix[(i*rows+y)*cols+x])
			}
		}
	}
	return d, nil
}

// LabelsBeside is the labels file of an MNIST-style images file:
// train-images-idx3-ubyte.gz → train-labels-idx1-ubyte.gz.
func LabelsBeside(images string) string {
	return strings.Replace(images, "images-idx3", "labels-idx1", 1)
}
