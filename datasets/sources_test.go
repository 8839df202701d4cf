package datasets

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExpandBraces(t *testing.T) {
	for spec, want := range map[string][]string{
		"data/{00000..00003}.tar":   {"data/00000.tar", "data/00001.tar", "data/00002.tar", "data/00003.tar"},
		"data/{8..11}.tar":          {"data/8.tar", "data/9.tar", "data/10.tar", "data/11.tar"},
		"{a,b}-{1..2}":              {"a-1", "a-2", "b-1", "b-2"},
		"x{a,{1..2}}y":              {"xay", "x1y", "x2y"},
		"s3/{03..1}":                {"s3/03", "s3/02", "s3/01"},
		"plain.tar":                 {"plain.tar"},
		"{notarange}/f.tar":         {"{notarange}/f.tar"},
		"pipe:curl -s u/{0..1}.tar": {"pipe:curl -s u/0.tar", "pipe:curl -s u/1.tar"},
	} {
		got, err := expandBraces(spec)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("expandBraces(%q) = %q, %v; want %q", spec, got, err, want)
		}
	}
	if _, err := expandBraces("{0..99999999}"); err == nil {
		t.Error("a range of 10^8 names expanded without error")
	}
}

func TestExpandSources(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.tar", "a.tar", "c.parquet", "notes.md"} {
		writeFile(t, filepath.Join(dir, name), nil)
	}
	writeFile(t, filepath.Join(dir, "folder", "x.jpg"), nil)
	j := func(n string) string { return filepath.Join(dir, n) }
	for _, tc := range []struct {
		sources []string
		format  string
		want    []string
		wantFmt string
	}{
		{[]string{j("*.tar")}, "auto", []string{j("a.tar"), j("b.tar")}, "webdataset"},
		{[]string{j("a.tar") + "::" + j("gone-*.tar")}, "auto", []string{j("a.tar"), j("gone-*.tar")}, "webdataset"},
		{[]string{dir}, "auto", []string{j("a.tar"), j("b.tar")}, "webdataset"},
		{[]string{dir}, "parquet", []string{j("c.parquet")}, "parquet"},
		{[]string{j("folder")}, "auto", []string{j("folder")}, "imagefolder"},
		{[]string{"pipe:cat x", "https://h/{0..1}.tar"}, "auto", []string{"pipe:cat x", "https://h/0.tar", "https://h/1.tar"}, "webdataset"},
	} {
		got, f, err := expandSources(tc.sources, tc.format)
		if err != nil || !reflect.DeepEqual(got, tc.want) || f != tc.wantFmt {
			t.Errorf("expandSources(%q, %s) = %q, %s, %v; want %q, %s", tc.sources, tc.format, got, f, err, tc.want, tc.wantFmt)
		}
	}
	for _, bad := range [][]string{{j("notes.md")}, {j("a.tar"), j("c.parquet")}, {""}} {
		if _, _, err := expandSources(bad, "auto"); err == nil {
			t.Errorf("expandSources(%q) gave no error", bad)
		}
	}
}

// HTTP shards are streamed; 404 counts as missing_file, other statuses and silent servers as
// read_error; none of them stops the run.
func TestHTTPSources(t *testing.T) {
	dir, _ := wdsFixture(t)
	shard, err := os.ReadFile(filepath.Join(dir, "a.tar"))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a.tar":
			w.Write(shard)
		case "/boom.tar":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/hang.tar": // sends the first 2 KB, then goes silent
			w.Write(shard[:2048])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := wdsConfig(dir, srv.URL+"/{a,missing,boom,hang}.tar")
	cfg.ReadTimeout = 300 * time.Millisecond
	start := time.Now()
	l := mustLoader(t, cfg)
	got := keysAndCaptions(collect(t, l))
	if want := wdsWantSamples[:7]; !reflect.DeepEqual(got, want) {
		t.Errorf("samples %q, want %q", got, want)
	}
	drops := l.Stats().Drops
	want := map[string]int64{"undecodable_image": 1, "missing_caption": 1, "missing_image": 2,
		"missing_file": 1, "read_error": 2, "truncated_sample": 1}
	if !reflect.DeepEqual(drops, want) {
		t.Errorf("drops %v, want %v", drops, want)
	}
	if !strings.Contains(l.Stats().LastErrors["read_error"], "no data for") {
		t.Errorf("read_error message %q, want the silence timeout", l.Stats().LastErrors["read_error"])
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: the silent server held the run up", d)
	}
}

// Closing the loader kills a pipe: command that never ends, and returns promptly.
func TestCloseStopsHangingPipe(t *testing.T) {
	l, err := New(Config{Sources: []string{"pipe:sleep 30"}, Resolution: 16, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	l.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
}

// A pipe: command that goes silent is killed after ReadTimeout and counted.
func TestSilentPipeTimesOut(t *testing.T) {
	l := mustLoader(t, Config{Sources: []string{"pipe:sleep 30"}, Resolution: 16, ReadTimeout: 200 * time.Millisecond, BatchSize: 1})
	_, err := l.Next(t.Context())
	if err == nil || !strings.Contains(err.Error(), "pipe_failed 1") {
		t.Errorf("error %v, want one that shows pipe_failed 1", err)
	}
}
