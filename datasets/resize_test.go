package datasets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
)

// patternImage is the deterministic test image the PIL references below were computed from (Pillow
// 9.4, Image.frombytes("RGB", ...) then Image.resize((w, h), filter)).
func patternImage(w, h int, f func(x, y, c int) int) rgbImage {
	img := rgbImage{w: w, h: h, pix: make([]uint8, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				img.pix[(y*w+x)*3+c] = uint8(f(x, y, c) % 256)
			}
		}
	}
	return img
}

func TestResizeMatchesPIL(t *testing.T) {
	small := patternImage(7, 5, func(x, y, c int) int { return x*37 + y*91 + c*53 + x*y*7 })
	for _, tc := range []struct {
		filter string
		w, h   int
		want   string // PIL output bytes, hex
	}{
		{"nearest", 4, 3, "00356a4a7fb494c9fede1348b6eb201c518682b7ece81d526ca1d6ee235870a5daf2275c"},
		{"nearest", 3, 9, "255a8f6fa4d9b9ee23255a8f6fa4d9b9ee2387bcf1df1449376ca187bcf1df1449376ca1e91e534f84b9b5ea1f4b80b5bff42933689d4b80b5bff42933689dade2172f6499b1e61bade2172f6499b1e61b"},
		{"box", 4, 3, "4277ac93887d5085ba8d8277d0853a366ba082b7eccf84395e9388998e83b56a9f91867b"},
		{"box", 3, 9, "13487d6fa4d9cc813613487d6fa4d9cc813671a6db8a69494d82b771a6db8a69494d82b7d0853a4f84b9cf84392e6398bf9f7e5085ba2e6398bf9f7e5085ba8dc277846499d2873c8dc277846499d2873c"},
		{"bilinear", 4, 3, "3c71a17a918d758ba3957d73918971757e86828a93977f7765938a9d867f908c859e8177"},
		{"bilinear", 3, 9, "20558a6fa4cabe985f4075987b8da4938b7776abaf9067654b769f9498867c6f7c758286ab724c5e84aabc965d7175828c998c9381854e7da5aaa3767a749d8494808c8583a28874a4a2697a738aba945b"},
		{"hamming", 4, 3, "33689d77958a7290b59f776aa68f5a5a74888094aeae796265988baa7582928794a67e71"},
		{"hamming", 3, 9, "1c51866fa4d6c2954d2c61917796bfad905d7bb0c49f544e4477ab949a96836573728288bc73465284b6c2954c6c728295a3858682883d72a5bbb4696377ab8ca6727b748eb2905c9cb1686e6796c2954c"},
		{"bicubic", 4, 3, "3871a37f8f8b718ca7977d6e968971757e8782878f927f7b6393889f857f8f9086a18075"},
		{"bicubic", 3, 9, "1247826cb2e0ce9954376f977c95ac998a747ab4b89562533f70a9a3a184756774707f8bad72465384b5c2965b686f808fa093967f853f7cadbaa7727370a283977f8f8184a38972aca562746b8fc09855"},
		{"lanczos", 4, 3, "3977a2838a8a6c8ea99780699589767a7e89808686898084628e869e86828f9787a67e73"},
		{"lanczos", 3, 9, "0c387968beeedc9d4d336f9b7f9aa993867879b7ba9666503a6badb9aa7d6d5e6d6a7f8ead6d424f84b9c69b5b5c667e8fa69ea080803b83b3c0a570726c9f80968396847e9c8877baa0586e6b8fc19f56"},
	} {
		f, err := filterNamed(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		got := hex.EncodeToString(resizeCrop(small, tc.w, tc.h, f, 0, 0, tc.w, tc.h).pix)
		if got != tc.want {
			t.Errorf("%s 7x5→%dx%d:\n got %s\nwant %s", tc.filter, tc.w, tc.h, got, tc.want)
		}
	}

	big := patternImage(97, 61, func(x, y, c int) int { return x*x*3 + y*17 + c*101 + (x^y)*5 })
	for _, tc := range []struct {
		filter string
		w, h   int
		sha256 string // of PIL's output bytes
	}{
		{"bilinear", 50, 32, "3f0c1ce856fab0ec632ae05e7e932e729062cea805d5202821ad4318625426fc"},
		{"bilinear", 160, 100, "4a81531c7b2d905843931850988b305d9cd7354a71576e7b92af69eb420435f7"},
		{"bicubic", 50, 32, "54de10104df66b932b498847ffacc8efb141fe452f9e05d0c23e5c63d18c2b0b"},
		{"bicubic", 160, 100, "27f42cecb667518b811533a911619af3fc15da76281eb08d3e8b480db8f3a446"},
		{"lanczos", 50, 32, "b4639df34166514eef343f22b8ecf1ad683dbb35d5f2962325ea73707ce8f482"},
		{"lanczos", 160, 100, "679f3bb6667d9fb0d9d4251d62f40a2fc60d5f528fc4e2f75090e59cde1a3ef8"},
		{"nearest", 50, 32, "fd22d0d318517b23986f74b5f7c099ea0b7c3daea05cb2be81ff11f2ca564edd"},
		{"nearest", 160, 100, "406b856c7904334d2a31a8571f09cf35b7c5286f3d8f05fe92b7196510b3d7c5"},
	} {
		f, _ := filterNamed(tc.filter)
		sum := sha256.Sum256(resizeCrop(big, tc.w, tc.h, f, 0, 0, tc.w, tc.h).pix)
		if got := hex.EncodeToString(sum[:]); got != tc.sha256 {
			t.Errorf("%s 97x61→%dx%d: sha256 %s, want PIL's %s", tc.filter, tc.w, tc.h, got, tc.sha256)
		}
	}
}

// The window computed alone equals the same window cut from the full resize, for every filter.
func TestResizeCropWindowEqualsFullResize(t *testing.T) {
	src := patternImage(97, 61, func(x, y, c int) int { return x*13 + y*y + c*29 })
	for _, f := range resampleFilters {
		for _, size := range [][2]int{{50, 32}, {160, 100}, {97, 40}, {60, 61}} {
			nw, nh := size[0], size[1]
			full := resizeCrop(src, nw, nh, f, 0, 0, nw, nh)
			x0, y0, w, h := nw/5, nh/4, nw/2, nh/2
			win := resizeCrop(src, nw, nh, f, x0, y0, w, h)
			for y := 0; y < h; y++ {
				for x := 0; x < w*3; x++ {
					if a, b := win.pix[y*w*3+x], full.pix[(y+y0)*nw*3+x0*3+x]; a != b {
						t.Fatalf("%s %dx%d window (%d,%d): %d, full resize has %d", f.name, nw, nh, x/3, y, a, b)
					}
				}
			}
		}
	}
}

func TestPlacementFollowsTorchvision(t *testing.T) {
	for _, tc := range []struct{ w, h, res, nw, nh int }{
		{768, 640, 512, 614, 512}, // int(512*768/640) = 614
		{640, 768, 512, 512, 614},
		{512, 512, 512, 512, 512},
		{300, 200, 512, 768, 512}, // upscale
		{1000, 333, 64, 192, 64},  // int(64*1000/333) = 192
	} {
		if nw, nh := resizedSize(tc.w, tc.h, tc.res); nw != tc.nw || nh != tc.nh {
			t.Errorf("resize %dx%d to %d: %dx%d, want %dx%d", tc.w, tc.h, tc.res, nw, nh, tc.nw, tc.nh)
		}
	}
	// CenterCrop rounds (515-512)/2 = 1.5 half to even, as Python's round does.
	tf := transformSpec{res: 512, center: true}
	if p := tf.place(515*512/512, 512, nil); p.left != 2 || p.top != 0 {
		t.Errorf("center crop of 515x512: top %d left %d, want 0 2", p.top, p.left)
	}
	if p := tf.place(517, 512, nil); p.left != 2 {
		t.Errorf("center crop of 517x512: left %d, want 2 (2.5 rounds to even)", p.left)
	}
	// ToTensor + Normalize([0.5], [0.5]).
	if normLUT[0] != -1 || normLUT[255] != 1 || fmt.Sprint(normLUT[128]) != "0.003921628" {
		t.Errorf("normalisation: 0→%v 255→%v 128→%v", normLUT[0], normLUT[255], normLUT[128])
	}
}

// A flipped sample is the mirror image of the window at (top, nw-left-res) of the resized image, and
// records (top, left) in the mirrored resized image.
func TestFlipMirrorsTheWindow(t *testing.T) {
	src := patternImage(50, 30, func(x, y, c int) int { return x*5 + y*3 + c*70 })
	f, _ := filterNamed("bilinear")
	tf := transformSpec{res: 16, filter: f, flip: true}
	flips := 0
	for off := 0; off < 20; off++ {
		dst := make([]float32, 3*16*16)
		_, p := tf.apply(src, newSampleRand(1, 0, 0, off), dst)
		if p.nw != 26 || p.nh != 16 || p.top != 0 || p.left < 0 || p.left > 10 {
			t.Fatalf("placement %+v", p)
		}
		left := p.left
		if p.flipped {
			flips++
			left = p.nw - p.left - 16
		}
		win := resizeCrop(src, p.nw, p.nh, f, left, p.top, 16, 16)
		for y := 0; y < 16; y++ {
			for x := 0; x < 16; x++ {
				sx := x
				if p.flipped {
					sx = 15 - x
				}
				if got, want := dst[y*16+x], normLUT[win.pix[(y*16+sx)*3]]; got != want {
					t.Fatalf("offset %d (flipped %v) pixel (%d,%d): %v, want %v", off, p.flipped, x, y, got, want)
				}
			}
		}
	}
	if flips == 0 || flips == 20 {
		t.Errorf("%d of 20 samples flipped", flips)
	}
}
