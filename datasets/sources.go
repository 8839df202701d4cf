package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxExpansion bounds how many names one brace spec may expand to.
const maxExpansion = 1 << 20

// expandBraces expands "{a..b}" numeric ranges and "{x,y,z}" alternatives, nested or in sequence, as
// Python's braceexpand does for WebDataset URLs. A range is zero-padded to the width of its bounds
// when either bound has a leading zero ("{00000..01099}" gives "00000" … "01099"). Braces that form
// neither are kept literally.
func expandBraces(s string) ([]string, error) {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return []string{s}, nil
	}
	depth, end := 0, -1
	var commas []int
	for i := open; i < len(s) && end < 0; i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				end = i
			}
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		}
	}
	if end < 0 {
		return []string{s}, nil
	}
	prefix, body, suffix := s[:open], s[open+1:end], s[end+1:]
	var alts []string
	if len(commas) > 0 {
		start := open + 1
		for _, c := range append(commas, end) {
			sub, err := expandBraces(s[start:c])
			if err != nil {
				return nil, err
			}
			alts = append(alts, sub...)
			start = c + 1
		}
	} else if r, ok, err := numericRange(body); err != nil {
		return nil, fmt.Errorf("brace range %q: %w", s, err)
	} else if ok {
		alts = r
	} else {
		// Not an expansion: keep "{body}" literally and expand what follows.
		rest, err := expandBraces(suffix)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(rest))
		for i, r := range rest {
			out[i] = prefix + "{" + body + "}" + r
		}
		return out, nil
	}
	rest, err := expandBraces(suffix)
	if err != nil {
		return nil, err
	}
	if len(alts)*len(rest) > maxExpansion {
		return nil, fmt.Errorf("brace spec %q expands to more than %d names", s, maxExpansion)
	}
	out := make([]string, 0, len(alts)*len(rest))
	for _, a := range alts {
		for _, r := range rest {
			out = append(out, prefix+a+r)
		}
	}
	return out, nil
}

// numericRange expands "a..b"; ok is false when body is not of that form.
func numericRange(body string) (out []string, ok bool, err error) {
	lo, hi, found := strings.Cut(body, "..")
	if !found {
		return nil, false, nil
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil {
		return nil, false, nil
	}
	if b-a >= maxExpansion || a-b >= maxExpansion {
		return nil, true, fmt.Errorf("more than %d names", maxExpansion)
	}
	width := 0
	if (len(lo) > 1 && lo[0] == '0') || (len(hi) > 1 && hi[0] == '0') {
		width = max(len(lo), len(hi))
	}
	step := 1
	if b < a {
		step = -1
	}
	for i := a; ; i += step {
		out = append(out, fmt.Sprintf("%0*d", width, i))
		if i == b {
			break
		}
	}
	return out, true, nil
}

func isPipe(name string) bool { return strings.HasPrefix(name, "pipe:") }
func isURL(name string) bool {
	return strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://")
}

// formatOfName guesses a shard's format from its name alone; "" when the name does not tell.
func formatOfName(name string) string {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".parquet"):
		return FormatParquet
	case isPipe(name) || isURL(name), strings.HasSuffix(lower, ".tar"), strings.HasSuffix(lower, ".tgz"),
		strings.HasSuffix(lower, ".tar.gz"):
		return FormatWebDataset
	}
	return ""
}

// expandSources turns Config.Sources into the list of shards and settles the format. A directory is
// one image-folder shard, or, for WebDataset and Parquet, the tar or parquet files directly inside it.
// A glob that matches nothing, or a path that does not exist, stays in the list as a shard so that it
// is counted as missing_file when read instead of vanishing.
func expandSources(sources []string, format string) ([]string, string, error) {
	var shards []string
	known := map[string]bool{}
	for _, entry := range sources {
		for _, spec := range strings.Split(entry, "::") {
			spec = strings.TrimSpace(spec)
			if spec == "" {
				continue
			}
			names, err := expandBraces(spec)
			if err != nil {
				return nil, "", fmt.Errorf("datasets source %q: %w", spec, err)
			}
			for _, name := range names {
				if isPipe(name) || isURL(name) || !strings.ContainsAny(name, "*?[") {
					shards = append(shards, name)
					continue
				}
				matches, err := filepath.Glob(name)
				if err != nil {
					return nil, "", fmt.Errorf("datasets source glob %q: %w", name, err)
				}
				if len(matches) == 0 {
					shards = append(shards, name)
				}
				sort.Strings(matches)
				shards = append(shards, matches...)
			}
		}
	}
	var out []string
	for _, name := range shards {
		if fi, err := os.Stat(name); err == nil && fi.IsDir() && !isPipe(name) && !isURL(name) {
			files, f := dirShards(name, format)
			known[f] = true
			out = append(out, files...)
			continue
		}
		if f := formatOfName(name); f != "" {
			known[f] = true
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, "", fmt.Errorf("datasets sources %q: no shard", sources)
	}
	if format != FormatAuto {
		return out, format, nil
	}
	delete(known, "")
	switch len(known) {
	case 1:
		for f := range known {
			format = f
		}
		return out, format, nil
	case 0:
		var missing []string
		for _, name := range out {
			if _, err := os.Stat(name); err != nil && !isPipe(name) && !isURL(name) {
				missing = append(missing, name)
			}
		}
		if len(missing) == len(out) {
			return nil, "", fmt.Errorf("datasets sources %q: no such file or folder: %s", sources, strings.Join(missing, ", "))
		}
		return nil, "", fmt.Errorf("datasets sources %q: cannot tell the format from the names; name it (data.format in an experiment, -format in the data commands): webdataset, parquet or imagefolder", sources)
	default:
		return nil, "", fmt.Errorf("datasets sources %q: mixed formats %v; use one format per loader", sources, known)
	}
}

// dirShards lists the shards a directory stands for under format ("auto" picks tar files, else parquet
// files, else the directory as an image folder).
func dirShards(dir, format string) ([]string, string) {
	list := func(exts ...string) []string {
		entries, _ := os.ReadDir(dir)
		var files []string
		for _, e := range entries {
			lower := strings.ToLower(e.Name())
			for _, ext := range exts {
				if !e.IsDir() && strings.HasSuffix(lower, ext) {
					files = append(files, filepath.Join(dir, e.Name()))
					break
				}
			}
		}
		return files // ReadDir sorts by name
	}
	switch format {
	case FormatWebDataset:
		return list(".tar", ".tgz", ".tar.gz"), format
	case FormatParquet:
		return list(".parquet"), format
	case FormatImageFolder:
		return []string{dir}, format
	}
	if tars := list(".tar", ".tgz", ".tar.gz"); len(tars) > 0 {
		return tars, FormatWebDataset
	}
	if pq := list(".parquet"); len(pq) > 0 {
		return pq, FormatParquet
	}
	return []string{dir}, FormatImageFolder
}

// shardError is a failure that skips (the rest of) a shard, with the reason it is counted under.
type shardError struct {
	reason reason
	msg    string
}

func (e *shardError) Error() string { return e.reason.String() + ": " + e.msg }

func shardErr(r reason, format string, args ...any) *shardError {
	return &shardError{reason: r, msg: fmt.Sprintf(format, args...)}
}

// shardStream is an open shard. finish ends it: with drain, it reads the source to its end and reports
// how it ended (a pipe's exit status); without, it aborts (kills the command, drops the connection).
type shardStream struct {
	r      io.Reader
	finish func(drain bool) error
}

// openStream opens a local file, a pipe: command or an http(s) URL as a byte stream, transparently
// gunzipping it when it starts with the gzip magic. Remote streams fail with pipe_failed / read_error
// when no byte arrives for timeout.
func openStream(ctx context.Context, name string, timeout time.Duration) (*shardStream, error) {
	var s *shardStream
	var err error
	switch {
	case isPipe(name):
		s, err = openPipe(ctx, strings.TrimPrefix(name, "pipe:"), timeout)
	case isURL(name):
		s, err = openHTTP(ctx, name, timeout)
	default:
		f, ferr := os.Open(name)
		if ferr != nil {
			if errors.Is(ferr, os.ErrNotExist) {
				return nil, shardErr(dropMissingFile, "%s", ferr)
			}
			return nil, shardErr(dropReadError, "%s", ferr)
		}
		s = &shardStream{r: f, finish: func(bool) error { return f.Close() }}
	}
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(s.r, 1<<16)
	s.r = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, zerr := gzip.NewReader(br)
		if zerr != nil {
			s.finish(false)
			return nil, shardErr(dropTruncatedTar, "%s: gzip: %v", name, zerr)
		}
		s.r = zr
	}
	return s, nil
}

// watchdog cancels a remote stream that stays silent for longer than its timeout.
type watchdog struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
	fired atomic.Bool
	what  reason
}

func newWatchdog(r io.Reader, d time.Duration, what reason, cancel func()) *watchdog {
	w := &watchdog{r: r, d: d, what: what}
	w.timer = time.AfterFunc(d, func() { w.fired.Store(true); cancel() })
	return w
}

func (w *watchdog) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if w.fired.Load() {
		return n, shardErr(w.what, "no data for %v", w.d)
	}
	if n > 0 {
		w.timer.Reset(w.d)
	}
	return n, err
}

// tailBuffer keeps the last bytes written to it (a command's stderr, for the drop message).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 512 {
		t.buf = t.buf[len(t.buf)-512:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// openPipe runs cmd with `sh -c` in its own process group (so that aborting kills the whole pipeline)
// and streams its stdout. A command that exits non-zero fails with pipe_failed when the stream is
// read to its end or finished with drain.
func openPipe(ctx context.Context, command string, timeout time.Duration) (*shardStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	setProcessGroup(cmd)
	stderr := &tailBuffer{}
	cmd.Stderr = stderr
	cmd.WaitDelay = time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, shardErr(dropPipeFailed, "pipe:%s: %v", command, err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, shardErr(dropPipeFailed, "pipe:%s: %v", command, err)
	}
	var once sync.Once
	var waitErr error
	wait := func() error {
		once.Do(func() {
			if err := cmd.Wait(); err != nil {
				msg := err.Error()
				if tail := stderr.String(); tail != "" {
					msg += ": " + tail
				}
				waitErr = shardErr(dropPipeFailed, "pipe:%s: %s", command, msg)
			}
			cancel()
		})
		return waitErr
	}
	wd := newWatchdog(out, timeout, dropPipeFailed, cancel)
	p := &pipeReader{r: wd, wait: wait}
	return &shardStream{r: p, finish: func(drain bool) error {
		wd.timer.Stop()
		if drain {
			io.Copy(io.Discard, p)
			return wait()
		}
		cancel()
		wait()
		return nil
	}}, nil
}

// pipeReader turns a clean end of a failed command's stdout into the command's error, so that a tar
// reader sees pipe_failed rather than a short but well-formed stream.
// Its end is sticky: bufio's Peek consumes an error, and the closed pipe must not be read again.
type pipeReader struct {
	r    io.Reader
	wait func() error
	err  error
}

func (p *pipeReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.r.Read(b)
	if err == io.EOF {
		if werr := p.wait(); werr != nil {
			err = werr
		}
	}
	p.err = err
	return n, err
}

// httpClient has no overall timeout (a shard may take minutes); the watchdog handles silence.
var httpClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	ResponseHeaderTimeout: time.Minute,
	MaxIdleConnsPerHost:   4,
}}

// openHTTP streams url without saving it; 404 counts as missing_file, other failures as read_error.
func openHTTP(ctx context.Context, url string, timeout time.Duration) (*shardStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, shardErr(dropReadError, "%s: %v", url, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		cancel()
		return nil, shardErr(dropReadError, "%s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusNotFound {
			return nil, shardErr(dropMissingFile, "%s: %s", url, resp.Status)
		}
		return nil, shardErr(dropReadError, "%s: %s", url, resp.Status)
	}
	wd := newWatchdog(resp.Body, timeout, dropReadError, cancel)
	return &shardStream{r: wd, finish: func(bool) error {
		wd.timer.Stop()
		cancel()
		return resp.Body.Close()
	}}, nil
}
