#!/usr/bin/env bash
# compare.sh: time two builds of golcm side by side.
#
#   experiments/compare.sh [-rounds N] OLD NEW [bench flags...]
#
# OLD and NEW are golcm binaries (build each commit with
# `go build -o /tmp/golcm-X ./experiments`). Each round runs
# `OLD bench FLAGS` and `NEW bench FLAGS` one after the other, the order
# alternating from round to round, so that load from other processes falls on
# both alike. Rows are matched by their "unet what" columns; for each row it
# prints the median run_s of each build and the ratio OLD/NEW (above 1: NEW is
# faster) as the median of the per-round ratios with their range, and the
# median peak_rss of each. Speed claims are these ratios, never seconds from
# another run. With KEEP=DIR set, each run's bench table stays in DIR.
set -euo pipefail

rounds=5
if [[ "${1:-}" == "-rounds" ]]; then
	rounds=$2
	shift 2
fi
if [[ $# -lt 2 ]]; then
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
old=$1 new=$2
shift 2
for bin in "$old" "$new"; do
	[[ -x "$bin" ]] || { echo "compare.sh: $bin is not an executable" >&2; exit 2; }
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if [[ -n ${KEEP:-} ]]; then
	# KEEP=DIR keeps every run's whole bench table (old.N, new.N), whose
	# %mm columns give each row's share of the matmul rate of that run.
	mkdir -p "$KEEP" || { echo "compare.sh: KEEP=$KEEP: cannot make that folder" >&2; exit 2; }
	rm -rf "$out"
	out=$KEEP
	trap - EXIT
fi
for ((r = 1; r <= rounds; r++)); do
	order=("old" "new")
	((r % 2 == 0)) && order=("new" "old")
	for which in "${order[@]}"; do
		bin=$old
		[[ $which == new ]] && bin=$new
		echo "round $r/$rounds: $which" >&2
		"$bin" bench "$@" >"$out/$which.$r" 2>"$out/$which.$r.err" ||
			{ echo "compare.sh: $bin bench $* failed:" >&2; cat "$out/$which.$r.err" >&2; exit 1; }
	done
done

# rows FILE: "key<TAB>run_s<TAB>peak_rss" for each row of a bench table; the
# columns are found by name in the header line that starts with "unet".
rows() {
	awk '
		$1 == "unet" && $2 == "what" { for (i = 1; i <= NF; i++) col[$i] = i; next }
		!("run_s" in col) { next }
		$0 ~ /skipped/ { next }
		{
			# "what" may hold spaces: it ends before the batch column, the first
			# all-digit field followed by an NxN latent.
			for (b = 3; b < NF; b++) if ($b ~ /^[0-9]+$/ && $(b+1) ~ /^[0-9]+x[0-9]+$/) break
			if (b >= NF) next
			key = $1; for (i = 2; i < b; i++) key = key " " $i
			shift = b - col["batch"]
			rss = ("peak_rss" in col) ? $(col["peak_rss"] + shift) : "-"
			printf "%s\t%s\t%s\n", key, $(col["run_s"] + shift), rss
		}' "$1"
}

for ((r = 1; r <= rounds; r++)); do
	rows "$out/old.$r" | sed "s/^/old\t$r\t/"
	rows "$out/new.$r" | sed "s/^/new\t$r\t/"
done | awk -F'\t' -v rounds="$rounds" '
	function median(list,   n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{
		which = $1; r = $2; key = $3
		if (!(key in seen)) { seen[key] = 1; order[++nkeys] = key }
		t[which, key, r] = $4
		times[which, key] = times[which, key] " " $4
		rss[which, key] = rss[which, key] " " $5
	}
	END {
		printf "%-32s %9s %9s %8s %17s %10s %10s\n", "row", "old_s", "new_s", "ratio", "range", "old_rss", "new_rss"
		for (k = 1; k <= nkeys; k++) {
			key = order[k]
			ratios = ""; lo = 1e9; hi = 0
			for (r = 1; r <= rounds; r++) {
				if (("old", key, r) in t && ("new", key, r) in t && t["new", key, r] > 0) {
					q = t["old", key, r] / t["new", key, r]
					ratios = ratios " " q; if (q < lo) lo = q; if (q > hi) hi = q
				}
			}
			os = (("old", key) in times) ? sprintf("%.3f", median(times["old", key])) : "-"
			ns = (("new", key) in times) ? sprintf("%.3f", median(times["new", key])) : "-"
			orss = (("old", key) in rss) ? rss["old", key] : ""; nrss = (("new", key) in rss) ? rss["new", key] : ""
			sub(/^ /, "", orss); sub(/^ /, "", nrss); split(orss, oa, " "); split(nrss, na, " ")
			if (ratios == "") {
				printf "%-32s %9s %9s %8s %17s %10s %10s\n", key, os, ns, "-", "-", (oa[1] == "" ? "-" : oa[1]), (na[1] == "" ? "-" : na[1])
			} else {
				printf "%-32s %9s %9s %7.2fx %8.2f–%.2fx %10s %10s\n", key, os, ns, median(ratios), lo, hi, oa[1], na[1]
			}
		}
	}'
