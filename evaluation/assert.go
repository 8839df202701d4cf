package evaluation

import (
	"fmt"
	"strconv"
	"strings"
)

// Assertion is one claim about a report: a row's metric compared with a
// number, or with another row's metric plus an offset, e.g.
//
//	teacher/ddim/50 prompt_accuracy > 0.3
//	lcm/lcm/4 frechet_distance < teacher/ddim/4 frechet_distance
//	lcm/lcm/4 prompt_accuracy >= teacher/ddim/50 prompt_accuracy - 0.05
//
// A row is model/sampler/steps; the metrics are eval.json's names.
type Assertion struct {
	Text        string
	Left, Right metricRef // Right.Row == "": a plain number (Offset)
	Op          string
	Offset      float64
}

type metricRef struct{ Row, Metric string }

var assertOps = []string{"<=", ">=", "<", ">"}

// ParseAssertion reads "ROW METRIC OP (NUMBER | ROW METRIC [(+|-) NUMBER])".
func ParseAssertion(s string) (Assertion, error) {
	a := Assertion{Text: s}
	f := strings.Fields(s)
	bad := func(why string) (Assertion, error) {
		return Assertion{}, fmt.Errorf("assertion %q: %s (want \"ROW METRIC OP NUMBER\" or \"ROW METRIC OP ROW METRIC [+|- NUMBER]\", ROW as model/sampler/steps)", s, why)
	}
	if len(f) < 4 {
		return bad("too few words")
	}
	a.Left = metricRef{f[0], f[1]}
	a.Op = f[2]
	if !contains(assertOps, a.Op) {
		return bad(fmt.Sprintf("operator %q is not one of %s", a.Op, strings.Join(assertOps, " ")))
	}
	rest := f[3:]
	if len(rest) == 1 {
		v, err := strconv.ParseFloat(rest[0], 64)
		if err != nil {
			return bad(fmt.Sprintf("%q is not a number", rest[0]))
		}
		a.Offset = v
		return a, nil
	}
	a.Right = metricRef{rest[0], rest[1]}
	switch len(rest) {
	case 2:
	case 4:
		v, err := strconv.ParseFloat(rest[3], 64)
		if err != nil || (rest[2] != "+" && rest[2] != "-") {
			return bad(fmt.Sprintf("the offset %q %q is not + or - a number", rest[2], rest[3]))
		}
		if rest[2] == "-" {
			v = -v
		}
		a.Offset = v
	default:
		return bad("unexpected words after the right-hand metric")
	}
	return a, nil
}

// Check evaluates the assertion on the report: the two sides' values,
// and an error when a row or metric is missing or the claim is false.
func (a Assertion) Check(rep *Report) (left, right float64, err error) {
	if left, err = rep.metric(a.Left); err != nil {
		return 0, 0, fmt.Errorf("assertion %q: %w", a.Text, err)
	}
	right = a.Offset
	if a.Right.Row != "" {
		v, err := rep.metric(a.Right)
		if err != nil {
			return 0, 0, fmt.Errorf("assertion %q: %w", a.Text, err)
		}
		right += v
	}
	var ok bool
	switch a.Op {
	case "<":
		ok = left < right
	case "<=":
		ok = left <= right
	case ">":
		ok = left > right
	case ">=":
		ok = left >= right
	}
	if !ok {
		return left, right, fmt.Errorf("assertion %q failed: %g %s %g is false", a.Text, left, a.Op, right)
	}
	return left, right, nil
}

// metric is one row's value of a metric named as in eval.json.
func (rep *Report) metric(m metricRef) (float64, error) {
	for _, r := range rep.Rows {
		if fmt.Sprintf("%s/%s/%d", r.Model, r.Sampler, r.Steps) != m.Row {
			continue
		}
		var v *float64
		switch m.Metric {
		case "latent_rmse":
			v = &r.LatentRMSE
		case "pixel_psnr_db":
			v = r.PixelPSNR
		case "frechet_distance":
			v = r.Frechet
		case "prompt_accuracy":
			v = r.PromptAccuracy
		case "seconds_per_image":
			v = &r.SecondsPerImage
		default:
			return 0, fmt.Errorf("unknown metric %q (latent_rmse, pixel_psnr_db, frechet_distance, prompt_accuracy, seconds_per_image)", m.Metric)
		}
		if v == nil {
			return 0, fmt.Errorf("row %s has no %s", m.Row, m.Metric)
		}
		return *v, nil
	}
	names := make([]string, len(rep.Rows))
	for i, r := range rep.Rows {
		names[i] = fmt.Sprintf("%s/%s/%d", r.Model, r.Sampler, r.Steps)
	}
	return 0, fmt.Errorf("no row %s (rows: %s)", m.Row, strings.Join(names, ", "))
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
