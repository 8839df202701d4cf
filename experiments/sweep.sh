#!/usr/bin/env bash
# sweep.sh: train one experiment over a grid of two keys, each run in its own output folder, then
# print a table of each run's last logged step and loss (the last loss line of its metrics.jsonl)
# and, when the runs evaluate (run.eval_every), the last evaluation's quality: the step it ran at,
# the student's latent RMSE and pixel PSNR to the teacher's reference samples at EVAL_STEPS LCM
# steps, and with an eval.classifier its Fréchet distance and prompt accuracy ("-" when absent).
#
#   experiments/sweep.sh                                  # tiny.toml, distill.loss x optim.lr
#   KEY2=distill.w_max VALUES2="10 15" experiments/sweep.sh -set optim.max_train_steps=60
#   experiments/sweep.sh -set run.eval_every=15           # with the quality columns
#
# Environment: SPEC (experiment file, default tiny.toml), KEY1/VALUES1 and KEY2/VALUES2 (the keys
# and their space-separated values), ROOT (parent of the run folders, default runs/sweep), EVAL_STEPS
# (the student's step count the quality columns show, default the first of eval.student_steps).
# Arguments are passed to every run (e.g. more -set overrides). Run from anywhere in the repo.
# A run folder left by an earlier sweep is reused as is: remove ROOT to start clean.
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC=${SPEC:-tiny.toml}
KEY1=${KEY1:-distill.loss}
VALUES1=${VALUES1:-l2 huber}
KEY2=${KEY2:-optim.lr}
VALUES2=${VALUES2:-1e-4 1e-3}
ROOT=${ROOT:-runs/sweep}

# field NAME LINE: the value of a top-level number field in one line of JSON (NAME may hold "/",
# as the evaluation's keys do: eval/student/lcm/4/latent_rmse).
field() {
	sed -n "s|.*\"$1\"[[:space:]]*:[[:space:]]*\([-+0-9.eE]*\).*|\1|p" <<<"$2"
}

# short NUMBER: a number with 4 significant digits, or "-".
short() {
	if [[ -n "$1" ]]; then printf '%.4g' "$1"; else echo -; fi
}

format='%-24s %-24s %6s %-10s %6s %-9s %-9s %-9s %-9s %-7s %s'
rows=()

for v1 in $VALUES1; do
	for v2 in $VALUES2; do
		out="$ROOT/${KEY1##*.}-${v1}_${KEY2##*.}-${v2}"
		echo "=== $KEY1=$v1 $KEY2=$v2 -> $out" >&2
		status=ok
		if ! go run ./experiments -f "$SPEC" -set "$KEY1=$v1" -set "$KEY2=$v2" -set "run.output_dir=$out" "$@"; then
			status=failed
		fi
		step=- loss=- at=- rmse='' psnr='' fd='' acc=''
		if [[ -s "$out/metrics.jsonl" ]]; then
			last=$(grep '"loss"' "$out/metrics.jsonl" | tail -n 1 || true)
			step=$(field step "$last")
			loss=$(short "$(field loss "$last")")
			# The last evaluation line, at EVAL_STEPS or its first student step count.
			evl=$(grep '"eval/' "$out/metrics.jsonl" | tail -n 1 || true)
			if [[ -n "$evl" ]]; then
				at=$(field step "$evl")
				n=${EVAL_STEPS:-$(grep -o '"eval/student/lcm/[0-9]*/' <<<"$evl" | head -n 1 | cut -d/ -f4)}
				shown=$n
				rmse=$(field "eval/student/lcm/$n/latent_rmse" "$evl")
				psnr=$(field "eval/student/lcm/$n/pixel_psnr_db" "$evl")
				fd=$(field "eval/student/lcm/$n/frechet_distance" "$evl")
				acc=$(field "eval/student/lcm/$n/prompt_accuracy" "$evl")
			fi
		fi
		rows+=("$(printf "$format" "$v1" "$v2" "${step:--}" "${loss:--}" "${at:--}" "$(short "$rmse")" "$(short "$psnr")" \
			"$(short "$fd")" "$(short "$acc")" "$status" "$out")")
	done
done

n=${EVAL_STEPS:-${shown:-N}}
printf "$format\n" "$KEY1" "$KEY2" step loss eval@ "rmse@$n" "psnr@$n" "fd@$n" "acc@$n" status output
printf '%s\n' "${rows[@]}"
