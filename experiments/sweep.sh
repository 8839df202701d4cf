#!/usr/bin/env bash
# sweep.sh: train one experiment over a grid of two keys, each run in its own output folder, then
# print a table of each run's last logged step and loss (the last line of its metrics.jsonl).
#
#   experiments/sweep.sh                                  # tiny.toml, distill.loss x optim.lr
#   KEY2=distill.w_max VALUES2="10 15" experiments/sweep.sh -set optim.max_train_steps=60
#
# Environment: SPEC (experiment file, default tiny.toml), KEY1/VALUES1 and KEY2/VALUES2 (the keys
# and their space-separated values), ROOT (parent of the run folders, default runs/sweep).
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

# field NAME LINE: the value of a top-level number field in one line of JSON.
field() {
	sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([-+0-9.eE]*\).*/\1/p" <<<"$2"
}

rows=()
for v1 in $VALUES1; do
	for v2 in $VALUES2; do
		out="$ROOT/${KEY1##*.}-${v1}_${KEY2##*.}-${v2}"
		echo "=== $KEY1=$v1 $KEY2=$v2 -> $out" >&2
		status=ok
		if ! go run ./experiments -f "$SPEC" -set "$KEY1=$v1" -set "$KEY2=$v2" -set "run.output_dir=$out" "$@"; then
			status=failed
		fi
		step=- loss=-
		if [[ -s "$out/metrics.jsonl" ]]; then
			last=$(tail -n 1 "$out/metrics.jsonl")
			step=$(field step "$last")
			loss=$(field loss "$last")
		fi
		rows+=("$(printf '%-24s %-24s %6s %-12s %-7s %s' "$v1" "$v2" "${step:--}" "${loss:--}" "$status" "$out")")
	done
done

printf '%-24s %-24s %6s %-12s %-7s %s\n' "$KEY1" "$KEY2" step loss status output
printf '%s\n' "${rows[@]}"
