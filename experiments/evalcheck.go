package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/golcm/golcm/evaluation"
)

// runEvalCheck checks assertions on an eval.json: the proof script's
// test that a run learned what it should.
func runEvalCheck(args []string) error {
	fs := flag.NewFlagSet("eval check", flag.ContinueOnError)
	report := fs.String("report", "", "the eval.json to check (required)")
	var claims stringList
	fs.Var(&claims, "assert", `a claim "ROW METRIC OP NUMBER" or "ROW METRIC OP ROW METRIC [+|- NUMBER]", ROW as model/sampler/steps (e.g. lcm/lcm/4), METRIC an eval.json name, OP one of < <= > >=; repeat the flag for several`)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: go run ./experiments eval check -report DIR/eval.json -assert CLAIM [-assert CLAIM ...]

Prints each claim with the values it compared and fails when one is false, e.g.
  -assert "teacher/ddim/50 prompt_accuracy > 0.3"
  -assert "lcm/lcm/4 frechet_distance < teacher/ddim/4 frechet_distance"
  -assert "lcm/lcm/4 prompt_accuracy >= teacher/ddim/50 prompt_accuracy - 0.05"`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *report == "" || len(claims) == 0 || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("eval check: -report and at least one -assert are required (unexpected arguments: %q)", fs.Args())
	}
	rep, err := evaluation.ReadReport(*report)
	if err != nil {
		return err
	}
	var failed []error
	for _, c := range claims {
		a, err := evaluation.ParseAssertion(c)
		if err != nil {
			return fmt.Errorf("eval check -assert: %w", err)
		}
		left, right, err := a.Check(rep)
		if err != nil {
			fmt.Println("FAIL", err)
			failed = append(failed, err)
			continue
		}
		fmt.Printf("ok   %s  (%.4g %s %.4g)\n", c, left, a.Op, right)
	}
	if len(failed) > 0 {
		return fmt.Errorf("eval check %s: %d of %d claims failed: %w", *report, len(failed), len(claims), errors.Join(failed...))
	}
	return nil
}
