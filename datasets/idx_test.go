package datasets

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxBytes encodes values as an IDX file of unsigned bytes with dims.
func idxBytes(dims []int, values []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, idxUnsignedByte, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(values)
	return b.Bytes()
}

// writeIDX writes an IDX file, gzip-compressed when gz is set, and returns its path.
func writeIDX(t testing.TB, dir, name string, dims []int, values []byte, gz bool) string {
	data := idxBytes(dims, values)
	if gz {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(data)
		w.Close()
		data = b.Bytes()
	}
	path := filepath.Join(dir, name)
	writeFile(t, path, data)
	return path
}

// idxSample is one sample of a converted shard.
type idxSample struct {
	key     string
	img     image.Image
	model   color.Model
	caption string
	meta    map[string]any
}

// readIDXShards reads every sample of the tar files matching pattern, in order.
func readIDXShards(t *testing.T, pattern string) (samples []idxSample, shards int) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no shards match %s (%v)", pattern, err)
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			key, suffix, _ := strings.Cut(h.Name, ".")
			if len(samples) == 0 || samples[len(samples)-1].key != key {
				samples = append(samples, idxSample{key: key})
			}
			s := &samples[len(samples)-1]
			switch suffix {
			case "png":
				cfg, err := png.DecodeConfig(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				s.model = cfg.ColorModel
				if s.img, err = png.Decode(bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
			case "txt":
				s.caption = string(data)
			case "json":
				if err := json.Unmarshal(data, &s.meta); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("%s: unexpected member %s", name, h.Name)
			}
		}
		f.Close()
	}
	return samples, len(files)
}

// TestIDXConvertRoundTripsPixelsAndLabels: 5 random 3×4 images padded to 6×6 come back from the
// shards pixel for pixel (grey in all three channels, black border of 1 on top and left, 2 below
// and 1 right), with their labels, label names and captions, split 2 + 2 + 1 over three shards,
// from gzip and plain files alike; the loader reads the shards as normalised RGB.
func TestIDXConvertRoundTripsPixelsAndLabels(t *testing.T) {
	const n, h, w, res = 5, 3, 4, 6
	pixels := make([]byte, n*h*w)
	for i := range pixels {
		pixels[i] = byte((i*97 + 13) % 256)
	}
	labels := []byte{9, 0, 7, 4, 2}
	for _, gz := range []bool{true, false} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			dir := t.TempDir()
			src := IDXSource{
				Images:     writeIDX(t, dir, "images-idx3-ubyte.gz", []int{n, h, w}, pixels, gz),
				Labels:     writeIDX(t, dir, "labels-idx1-ubyte", []int{n}, labels, gz),
				Resolution: res,
			}
			var progress []int
			src.Progress = func(done, total int) { progress = append(progress, done, total) }
			st, err := ConvertIDXToWebDataset(src, filepath.Join(dir, "out", "%03d.tar"), 2)
			if err != nil {
				t.Fatal(err)
			}
			if st.Samples != n || st.Shards != 3 || st.Labels["ankle boot"] != 1 || st.Size != res {
				t.Errorf("stats %+v, want 5 samples in 3 shards, one ankle boot, size 6", st)
			}
			if fmt.Sprint(progress[len(progress)-2:]) != "[5 5]" {
				t.Errorf("progress ended at %v, want [5 5]", progress[len(progress)-2:])
			}
			samples, shards := readIDXShards(t, filepath.Join(dir, "out", "*.tar"))
			if len(samples) != n || shards != 3 {
				t.Fatalf("%d samples in %d shards, want %d in 3", len(samples), shards, n)
			}
			wantCaptions := []string{"a photo of an ankle boot", "a photo of a t-shirt/top", "a photo of a sneaker",
				"a photo of a coat", "a photo of a pullover"}
			for i, s := range samples {
				if s.key != fmt.Sprintf("%09d", i) || s.caption != wantCaptions[i] {
					t.Errorf("sample %d: key %q caption %q, want %09d %q", i, s.key, s.caption, i, wantCaptions[i])
				}
				if s.meta["label"] != float64(labels[i]) || s.meta["label_name"] != FashionMNISTLabels[labels[i]] ||
					s.meta["original_width"] != float64(res) || s.meta["index"] != float64(i) {
					t.Errorf("sample %d: metadata %v", i, s.meta)
				}
				if s.model != color.RGBAModel || s.img.Bounds() != image.Rect(0, 0, res, res) {
					t.Errorf("sample %d: %v image of %v, want 8-bit RGB 6×6", i, s.model, s.img.Bounds())
				}
				for y := range res {
					for x := range res {
						var want uint8
						if y >= 1 && y < 1+h && x >= 1 && x < 1+w {
							want = pixels[i*h*w+(y-1)*w+(x-1)]
						}
						r, g, b, a := s.img.At(x, y).RGBA()
						if r>>8 != uint32(want) || g != r || b != r || a != 0xffff {
							t.Fatalf("sample %d pixel (%d,%d) = %d %d %d %d, want grey %d opaque", i, x, y, r>>8, g>>8, b>>8, a>>8, want)
						}
					}
				}
			}
			// The loader reads them back as [-1, 1] RGB: pixel (1, 1) of sample 0 is the first grey value.
			l, err := New(Config{Sources: []string{filepath.Join(dir, "out")}, Resolution: res, CenterCrop: true, Epochs: 1, Workers: 1, BatchSize: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			batches := collect(t, l)
			if len(batches) != n || batches[0].Captions[0] != wantCaptions[0] {
				t.Fatalf("loader: %d batches, first caption %q", len(batches), batches[0].Captions[0])
			}
			want := float32(pixels[0])/255*2 - 1
			for c := range 3 {
				if got := batches[0].Pixels[c*res*res+1*res+1]; got-want > 1e-6 || want-got > 1e-6 {
					t.Errorf("loader channel %d pixel (1,1) = %g, want %g", c, got, want)
				}
			}
		})
	}
}

// TestIDXResizeKeepsFlatImagesFlat: a constant grey image resized from 4×4 to 8×8 stays that grey
// everywhere (every resampling filter's weights sum to one), and Resolution 0 keeps the size.
func TestIDXResizeKeepsFlatImagesFlat(t *testing.T) {
	dir := t.TempDir()
	flat := bytes.Repeat([]byte{77}, 2*4*4)
	src := IDXSource{Images: writeIDX(t, dir, "i", []int{2, 4, 4}, flat, false),
		Labels: writeIDX(t, dir, "l", []int{2}, []byte{1, 3}, false), Resolution: 8, Fit: FitResize,
		LabelNames: []string{"zero", "one", "two", "three"}, CaptionTemplate: "{label}"}
	if _, err := ConvertIDXToWebDataset(src, filepath.Join(dir, "r%d.tar"), 10); err != nil {
		t.Fatal(err)
	}
	samples, _ := readIDXShards(t, filepath.Join(dir, "r*.tar"))
	if len(samples) != 2 || samples[0].caption != "one" || samples[1].caption != "three" {
		t.Fatalf("samples %v", samples)
	}
	for _, s := range samples {
		if s.img.Bounds().Dx() != 8 {
			t.Fatalf("resized to %v, want 8×8", s.img.Bounds())
		}
		for y := range 8 {
			for x := range 8 {
				if r, _, _, _ := s.img.At(x, y).RGBA(); r>>8 != 77 {
					t.Fatalf("pixel (%d,%d) = %d, want 77", x, y, r>>8)
				}
			}
		}
	}
	src.Resolution, src.Fit = 0, FitPad
	st, err := ConvertIDXToWebDataset(src, filepath.Join(dir, "k%d.tar"), 10)
	if err != nil || st.Size != 4 {
		t.Errorf("resolution 0: size %d (%v), want the images' 4", st.Size, err)
	}
}

// TestIDXRejectsBadFiles: every malformed input is an error that names the file (or the key) at
// fault.
func TestIDXRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := writeIDX(t, dir, "good", []int{2, 2, 2}, make([]byte, 8), false)
	labels := writeIDX(t, dir, "labels", []int{2}, []byte{0, 1}, false)
	bad := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, data)
		return p
	}
	for _, c := range []struct {
		name   string
		src    IDXSource
		inErr  string
		output string
	}{
		{"bad magic", IDXSource{Images: bad("magic", []byte{1, 0, 8, 1, 0, 0, 0, 0}), Labels: labels}, "magic", ""},
		{"not bytes", IDXSource{Images: bad("float", append([]byte{0, 0, 0x0d, 1, 0, 0, 0, 1}, 0, 0, 0, 0)), Labels: labels}, "0x0d", ""},
		{"truncated", IDXSource{Images: bad("short", idxBytes([]int{2, 2, 2}, make([]byte, 7))), Labels: labels}, "holds 7", ""},
		{"trailing", IDXSource{Images: bad("long", idxBytes([]int{2, 2, 2}, make([]byte, 9))), Labels: labels}, "1 bytes after", ""},
		{"missing", IDXSource{Images: filepath.Join(dir, "nope"), Labels: labels}, "nope", ""},
		{"labels not 1-D", IDXSource{Images: good, Labels: good}, "want [2] labels", ""},
		{"label count", IDXSource{Images: good, Labels: writeIDX(t, dir, "three", []int{3}, []byte{0, 1, 2}, false)}, "three", ""},
		{"images not 3-D", IDXSource{Images: labels, Labels: labels}, "want [count, rows, cols]", ""},
		{"label without name", IDXSource{Images: good, Labels: writeIDX(t, dir, "big", []int{2}, []byte{0, 10}, false)}, "label 10 of sample 1", ""},
		{"pad smaller", IDXSource{Images: good, Labels: labels, Resolution: 1}, "use fit resize", ""},
		{"template", IDXSource{Images: good, Labels: labels, CaptionTemplate: "a photo"}, "no {label}", ""},
		{"fit", IDXSource{Images: good, Labels: labels, Fit: "crop"}, `fit "crop"`, ""},
		{"pattern", IDXSource{Images: good, Labels: labels}, "integer verb", "out.tar"},
	} {
		out := c.output
		if out == "" {
			out = filepath.Join(dir, "o", c.name+"%d.tar")
		}
		_, err := ConvertIDXToWebDataset(c.src, out, 10)
		if err == nil || !strings.Contains(err.Error(), c.inErr) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.inErr)
		}
		if err != nil && c.src.Images != good && c.inErr != "no {label}" && !strings.Contains(err.Error(), c.src.Images) &&
			!strings.Contains(err.Error(), c.src.Labels) {
			t.Errorf("%s: error %v does not name the file", c.name, err)
		}
	}
	if _, err := New(Config{Sources: []string{good}, Format: FormatIDX}); err == nil || !strings.Contains(err.Error(), "convert") {
		t.Errorf("loader on format idx: %v, want an error pointing at data convert", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "o", "*")); len(m) > 0 {
		t.Errorf("failed conversions left %v", m)
	}
}

// fashionMNISTDir is where Debian's dataset-fashion-mnist package installs the data.
const fashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// TestFashionMNISTFromDebian reads the real data set when the Debian package is installed: 60,000
// train and 10,000 test images of 28×28, 6,000 and 1,000 of each of the 10 classes, the first image
// of either split an ankle boot (label 9); the first test images convert to 32×32 shards whose
// centre is the original image.
func TestFashionMNISTFromDebian(t *testing.T) {
	if _, err := os.Stat(fashionMNISTDir); err != nil {
		t.Skipf("TestFashionMNISTFromDebian needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist): %v", err)
	}
	for _, split := range []struct {
		prefix string
		n      int
	}{{"train", 60000}, {"t10k", 10000}} {
		images, err := ReadIDX(filepath.Join(fashionMNISTDir, split.prefix+"-images-idx3-ubyte.gz"))
		if err != nil {
			t.Fatal(err)
		}
		labels, err := ReadIDX(filepath.Join(fashionMNISTDir, split.prefix+"-labels-idx1-ubyte.gz"))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(images.Dims) != fmt.Sprint([]int{split.n, 28, 28}) || fmt.Sprint(labels.Dims) != fmt.Sprint([]int{split.n}) {
			t.Fatalf("%s: dims %v and %v", split.prefix, images.Dims, labels.Dims)
		}
		counts := make([]int, 256)
		for _, l := range labels.Data {
			counts[l]++
		}
		for c := range 10 {
			if counts[c] != split.n/10 {
				t.Errorf("%s: %d samples of class %d, want %d", split.prefix, counts[c], c, split.n/10)
			}
		}
		if labels.Data[0] != 9 {
			t.Errorf("%s: first label %d, want 9 (ankle boot)", split.prefix, labels.Data[0])
		}
	}
	dir := t.TempDir()
	src := IDXSource{Images: filepath.Join(fashionMNISTDir, "t10k-images-idx3-ubyte.gz"),
		Labels: filepath.Join(fashionMNISTDir, "t10k-labels-idx1-ubyte.gz"), Resolution: 32, Limit: 20}
	st, err := ConvertIDXToWebDataset(src, filepath.Join(dir, "%05d.tar"), 8)
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples != 20 || st.Shards != 3 {
		t.Errorf("stats %+v, want 20 samples in 3 shards", st)
	}
	images, _ := ReadIDX(src.Images)
	samples, _ := readIDXShards(t, filepath.Join(dir, "*.tar"))
	if samples[0].caption != "a photo of an ankle boot" {
		t.Errorf("first caption %q", samples[0].caption)
	}
	for i, s := range samples {
		for y := range 28 {
			for x := range 28 {
				if r, _, _, _ := s.img.At(x+2, y+2).RGBA(); r>>8 != uint32(images.Data[i*784+y*28+x]) {
					t.Fatalf("sample %d pixel (%d,%d) = %d, want %d", i, x, y, r>>8, images.Data[i*784+y*28+x])
				}
			}
		}
	}
}
