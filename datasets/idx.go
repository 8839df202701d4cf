package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"strings"
)

// IDX is the array format of MNIST and Fashion-MNIST (Debian's dataset-fashion-mnist installs
// /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz): a big-endian
// header of two zero bytes, a type code (0x08: unsigned bytes, the only type these data sets use),
// the number of dimensions and each dimension as a uint32, then the values in row-major order.
// Files may be gzip-compressed (recognised by their magic bytes, not their name).

// IDXArray is one IDX file of unsigned bytes.
type IDXArray struct {
	Dims []int
	Data []byte
}

// idxUnsignedByte is the IDX type code of uint8 values.
const idxUnsignedByte = 0x08

// maxIDXBytes bounds the values of one IDX file (Fashion-MNIST's train images are 47 MB).
const maxIDXBytes = 1 << 32

// ReadIDX reads an IDX file of unsigned bytes, plain or gzip-compressed. A bad magic, another
// value type, or a file shorter or longer than its header says is an error naming the file.
func ReadIDX(path string) (*IDXArray, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("idx: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("idx %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("idx %s: header: %w", path, err)
	}
	if head[0] != 0 || head[1] != 0 {
		return nil, fmt.Errorf("idx %s: magic %#02x %#02x, want 0x00 0x00 (not an IDX file?)", path, head[0], head[1])
	}
	if head[2] != idxUnsignedByte {
		return nil, fmt.Errorf("idx %s: value type %#02x, want 0x08 (unsigned bytes)", path, head[2])
	}
	if head[3] == 0 {
		return nil, fmt.Errorf("idx %s: 0 dimensions", path)
	}
	a := &IDXArray{Dims: make([]int, head[3])}
	size := int64(1)
	for i := range a.Dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, fmt.Errorf("idx %s: dimension %d: %w", path, i, err)
		}
		a.Dims[i] = int(d)
		size *= int64(d)
		if size > maxIDXBytes {
			return nil, fmt.Errorf("idx %s: dimensions %v hold more than %d values", path, a.Dims[:i+1], int64(maxIDXBytes))
		}
	}
	a.Data = make([]byte, size)
	if n, err := io.ReadFull(r, a.Data); err != nil {
		return nil, fmt.Errorf("idx %s: dimensions %v need %d values, the file holds %d: %w", path, a.Dims, size, n, err)
	}
	if n, _ := io.Copy(io.Discard, r); n > 0 {
		return nil, fmt.Errorf("idx %s: %d bytes after the %d values of dimensions %v", path, n, size, a.Dims)
	}
	return a, nil
}

// FashionMNISTLabels are the class names of Fashion-MNIST's labels 0..9 (the data set's README),
// in lower case for captions.
var FashionMNISTLabels = []string{"t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
	"sneaker", "bag", "ankle boot"}

// IDXSource is a labelled image set in two IDX files, to convert into captioned WebDataset shards.
// The zero value of every field but Images and Labels means its default.
type IDXSource struct {
	// Images is an IDX file of [N, rows, cols] grayscale images; Labels one of N labels.
	Images, Labels string
	// LabelNames names label i for the captions. Default FashionMNISTLabels.
	LabelNames []string
	// CaptionTemplate makes a sample's caption: "{label}" becomes its label's name and "{a}" the
	// article for it ("a" or "an"). Default "a photo of {a} {label}".
	CaptionTemplate string
	// Resolution is the side of the square output images; 0 keeps the images' own size.
	Resolution int
	// Fit is how images reach Resolution: "pad" (default) centres them on a black (0) square, as
	// the MNIST images were themselves placed; "resize" resamples them with Interpolation.
	Fit string
	// Interpolation is the filter of Fit "resize": see Config.Interpolation. Default "bilinear".
	Interpolation string
	// Limit converts only the first Limit samples; 0 converts all.
	Limit int
	// Progress, when set, is told how many samples are written after each one.
	Progress func(done, total int)
}

// The fits IDXSource accepts.
const (
	FitPad    = "pad"
	FitResize = "resize"
)

// DefaultCaptionTemplate is IDXSource's default caption: "a photo of an ankle boot".
const DefaultCaptionTemplate = "a photo of {a} {label}"

// withDefaults returns s with every zero field set to its default.
func (s IDXSource) withDefaults() IDXSource {
	if s.LabelNames == nil {
		s.LabelNames = FashionMNISTLabels
	}
	if s.CaptionTemplate == "" {
		s.CaptionTemplate = DefaultCaptionTemplate
	}
	if s.Fit == "" {
		s.Fit = FitPad
	}
	if s.Interpolation == "" {
		s.Interpolation = "bilinear"
	}
	return s
}

// Caption is the caption of a label, which must be below len(LabelNames).
func (s IDXSource) Caption(label int) string {
	s = s.withDefaults()
	return FillCaption(s.CaptionTemplate, s.LabelNames[label])
}

// FillCaption fills a caption template: "{label}" becomes label and "{a}" its English article
// ("an" before a vowel), so "a photo of {a} {label}" captions "an ankle boot".
func FillCaption(template, label string) string {
	article := "a"
	if label != "" && strings.ContainsRune("aeiouAEIOU", rune(label[0])) {
		article = "an"
	}
	return strings.NewReplacer("{label}", label, "{a}", article).Replace(template)
}

// IDXStats counts what ConvertIDXToWebDataset wrote.
type IDXStats struct {
	Samples int
	Shards  int
	Labels  map[string]int // samples per label name
	Size    int            // side of the written images
}

// String is a one-line summary.
func (st IDXStats) String() string {
	return fmt.Sprintf("wrote %d samples (%d×%d RGB PNG) in %d shards; per label %v", st.Samples, st.Size,
		st.Size, st.Shards, st.Labels)
}

// ConvertIDXToWebDataset writes the images and labels of src as WebDataset tar shards of
// samplesPerShard samples to outPattern (as ConvertToWebDataset): for sample i, "<i>.png" (the
// grayscale image replicated to RGB, padded or resized to the resolution), "<i>.txt" (the caption
// of its label) and "<i>.json" ({"label", "label_name", "key", "source", "index"} plus the image size
// as "original_width" / "original_height", the fields the size filters read).
func ConvertIDXToWebDataset(src IDXSource, outPattern string, samplesPerShard int) (IDXStats, error) {
	src = src.withDefaults()
	st := IDXStats{Labels: map[string]int{}}
	if err := checkShardPattern(outPattern, samplesPerShard); err != nil {
		return st, err
	}
	if src.Fit != FitPad && src.Fit != FitResize {
		return st, fmt.Errorf("datasets convert idx: fit %q, want pad or resize", src.Fit)
	}
	filter, err := filterNamed(src.Interpolation)
	if err != nil {
		return st, fmt.Errorf("datasets convert idx: %w", err)
	}
	if !strings.Contains(src.CaptionTemplate, "{label}") {
		return st, fmt.Errorf("datasets convert idx: caption template %q has no {label}: every caption would be the same", src.CaptionTemplate)
	}
	if src.Resolution < 0 || src.Limit < 0 {
		return st, fmt.Errorf("datasets convert idx: resolution %d and limit %d, want 0 or more", src.Resolution, src.Limit)
	}
	images, err := ReadIDX(src.Images)
	if err != nil {
		return st, err
	}
	if len(images.Dims) != 3 || images.Dims[1] == 0 || images.Dims[2] == 0 {
		return st, fmt.Errorf("idx %s: dimensions %v, want [count, rows, cols] images", src.Images, images.Dims)
	}
	labels, err := ReadIDX(src.Labels)
	if err != nil {
		return st, err
	}
	if len(labels.Dims) != 1 || labels.Dims[0] != images.Dims[0] {
		return st, fmt.Errorf("idx %s: dimensions %v, want [%d] labels, one per image of %s", src.Labels, labels.Dims, images.Dims[0], src.Images)
	}
	n, h, w := images.Dims[0], images.Dims[1], images.Dims[2]
	if src.Limit > 0 {
		n = min(n, src.Limit)
	}
	res := src.Resolution
	if res == 0 {
		if h != w && src.Fit == FitResize {
			return st, fmt.Errorf("datasets convert idx: %s holds %d×%d images; resize needs a resolution", src.Images, w, h)
		}
		res = max(h, w)
	}
	if src.Fit == FitPad && (res < h || res < w) {
		return st, fmt.Errorf("datasets convert idx: resolution %d is smaller than the %d×%d images of %s; use fit resize", res, w, h, src.Images)
	}
	st.Size = res

	sw := &shardWriter{pattern: outPattern}
	for i := range n {
		label := int(labels.Data[i])
		if label >= len(src.LabelNames) {
			sw.abort()
			return st, fmt.Errorf("idx %s: label %d of sample %d has no name (%d label names)", src.Labels, label, i, len(src.LabelNames))
		}
		if i > 0 && i%samplesPerShard == 0 {
			if err := sw.close(); err != nil {
				return st, err
			}
		}
		gray := images.Data[i*h*w : (i+1)*h*w]
		img := fitGray(gray, w, h, res, src.Fit, filter)
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			sw.abort()
			return st, fmt.Errorf("datasets convert idx: sample %d: %w", i, err)
		}
		key := fmt.Sprintf("%09d", i)
		meta, err := json.Marshal(map[string]any{"label": label, "label_name": src.LabelNames[label], "key": key,
			"source": src.Images, "index": i, "original_width": res, "original_height": res})
		if err != nil {
			sw.abort()
			return st, fmt.Errorf("datasets convert idx: sample %d: %w", i, err)
		}
		if err := sw.writeMembers(key, []shardMember{{"png", buf.Bytes()}, {"txt", []byte(src.Caption(label))}, {"json", meta}}); err != nil {
			sw.abort()
			return st, err
		}
		st.Samples++
		st.Labels[src.LabelNames[label]]++
		if src.Progress != nil {
			src.Progress(i+1, n)
		}
	}
	st.Shards = sw.next
	return st, sw.close()
}

// fitGray places a w×h grayscale image on a res×res RGB image: centred on black (pad; the extra
// row or column goes to the bottom and right, as torchvision's CenterCrop pads) or resampled
// (resize, PIL's Image.resize with filter).
func fitGray(gray []byte, w, h, res int, fit string, filter *resampleFilter) *image.RGBA {
	rgb := rgbImage{w: w, h: h, pix: make([]uint8, 3*w*h)}
	for i, v := range gray {
		rgb.pix[3*i], rgb.pix[3*i+1], rgb.pix[3*i+2] = v, v, v
	}
	out := image.NewRGBA(image.Rect(0, 0, res, res))
	for i := 3; i < len(out.Pix); i += 4 {
		out.Pix[i] = 0xff
	}
	top, left := (res-h)/2, (res-w)/2
	if fit == FitResize {
		rgb = resizeCrop(rgb, res, res, filter, 0, 0, res, res)
		top, left = 0, 0
	}
	for y := range rgb.h {
		for x := range rgb.w {
			p := rgb.pix[3*(y*rgb.w+x):]
			o := out.PixOffset(left+x, top+y)
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = p[0], p[1], p[2]
		}
	}
	return out
}
