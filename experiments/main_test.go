package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// TestTopLevelHelpShowsTrainFlags: `go run ./experiments -h` lists train
// as a command and prints the training flags, not just the usage lines.
func TestTopLevelHelpShowsTrainFlags(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, stdout := os.Stderr, os.Stdout
	os.Stderr, os.Stdout = w, w
	err = run([]string{"-h"})
	os.Stderr, os.Stdout = stderr, stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"train (the default)", "-print-config", "-set value", "lora convert", "export -checkpoint"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-h output lacks %q:\n%s", want, out)
		}
	}
}
