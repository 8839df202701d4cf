package evaluation

import (
	"strings"
	"testing"
)

func TestAssertions(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rep := &Report{Rows: []Row{
		{Model: "teacher", Sampler: "ddim", Steps: 50, Reference: true, PromptAccuracy: f(0.80), Frechet: f(2.0)},
		{Model: "teacher", Sampler: "ddim", Steps: 4, LatentRMSE: 0.5, PromptAccuracy: f(0.70), Frechet: f(9.0)},
		{Model: "lcm", Sampler: "lcm", Steps: 4, LatentRMSE: 0.3, PromptAccuracy: f(0.76), Frechet: f(4.0)},
	}}
	for _, c := range []struct {
		text string
		ok   bool
	}{
		{"teacher/ddim/50 prompt_accuracy > 0.3", true},
		{"teacher/ddim/50 prompt_accuracy > 0.8", false},
		{"teacher/ddim/50 prompt_accuracy >= 0.8", true},
		{"lcm/lcm/4 frechet_distance < teacher/ddim/4 frechet_distance", true},
		{"teacher/ddim/4 frechet_distance < lcm/lcm/4 frechet_distance", false},
		{"lcm/lcm/4 prompt_accuracy >= teacher/ddim/50 prompt_accuracy - 0.05", true}, // 0.76 >= 0.75
		{"teacher/ddim/4 prompt_accuracy >= teacher/ddim/50 prompt_accuracy - 0.05", false},
		{"lcm/lcm/4 latent_rmse <= teacher/ddim/4 latent_rmse + 0.1", true},
		{"lcm/lcm/4 latent_rmse <= teacher/ddim/4 latent_rmse - 0.3", false}, // 0.3 <= 0.2
	} {
		a, err := ParseAssertion(c.text)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = a.Check(rep)
		if (err == nil) != c.ok {
			t.Errorf("%q: got error %v, want ok=%v", c.text, err, c.ok)
		}
	}
	for text, want := range map[string]string{
		"lcm/lcm/8 latent_rmse < 1":             "no row lcm/lcm/8",
		"lcm/lcm/4 fid < 1":                     `unknown metric "fid"`,
		"teacher/ddim/4 pixel_psnr_db > 1":      "has no pixel_psnr_db",
		"lcm/lcm/4 latent_rmse == 1":            `operator "=="`,
		"lcm/lcm/4 latent_rmse < x":             `"x" is not a number`,
		"lcm/lcm/4 latent_rmse < a b * 2":       "is not + or - a number",
		"lcm/lcm/4 latent_rmse <":               "too few words",
		"lcm/lcm/4 latent_rmse < a b + 2 extra": "unexpected words",
	} {
		a, err := ParseAssertion(text)
		if err == nil {
			_, _, err = a.Check(rep)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got error %v, want one containing %q", text, err, want)
		}
	}
}
