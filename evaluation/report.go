package evaluation

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// WriteReport saves the report as indented JSON, atomically.
func WriteReport(path string, rep *Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	return os.Rename(tmp, path)
}

// ReadReport reads an eval.json; its settings come back as a Config.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval report: %w", err)
	}
	var raw struct {
		Report
		Settings Config `json:"settings"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("eval report %s: %w", path, err)
	}
	rep := raw.Report
	rep.Settings = raw.Settings
	return &rep, nil
}

// WriteTable prints the rows as an aligned table.
func WriteTable(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tsampler\tsteps\tguidance\tlatent RMSE\tPSNR dB\tFréchet\tprompt acc\ts/image\t")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%.4f\t%s\t%s\t%s\t%.3f\t\n", r.Model, r.Sampler, stepsCell(r), r.Guidance,
			r.LatentRMSE, optional(r.PixelPSNR, "%.2f", "inf"), optional(r.Frechet, "%.3f", "-"),
			optionalPercent(r.PromptAccuracy), r.SecondsPerImage)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var notes []string
	notes = append(notes, fmt.Sprintf("%d images per row; distances to the reference sample from the same noise; s/image is wall clock on this machine (%s)", rep.Images, rep.Machine))
	if rep.Real != nil {
		notes = append(notes, fmt.Sprintf("real set: %d images, classifier accuracy %.1f%%, Fréchet distance between its halves %s",
			rep.Real.Images, 100*rep.Real.Accuracy, optional(rep.Real.HalvesFrechet, "%.3f", "-")))
		if rep.Real.RowFloorFrechet != nil {
			notes = append(notes, fmt.Sprintf("the floor for rows of %d images: %d real images (every %d-th) are %.3f from the whole set",
				rep.Real.RowFloorImages, rep.Real.RowFloorImages, rep.Real.Images/rep.Real.RowFloorImages, *rep.Real.RowFloorFrechet))
		}
	}
	_, err := fmt.Fprintln(w, strings.Join(notes, "\n"))
	return err
}

// rowLine is a row on one line, for progress logs.
func rowLine(r Row) string {
	return fmt.Sprintf("%s: latent RMSE %.4f, PSNR %s dB, Fréchet %s, prompt accuracy %s, %.3f s/image",
		r.Name(), r.LatentRMSE, optional(r.PixelPSNR, "%.2f", "inf"), optional(r.Frechet, "%.3f", "-"),
		optionalPercent(r.PromptAccuracy), r.SecondsPerImage)
}

func stepsCell(r Row) string {
	if r.Reference {
		return fmt.Sprintf("%d (ref)", r.Steps)
	}
	return fmt.Sprint(r.Steps)
}

func optional(v *float64, format, missing string) string {
	if v == nil {
		return missing
	}
	return fmt.Sprintf(format, *v)
}

func optionalPercent(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100**v)
}
