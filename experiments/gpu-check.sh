#!/usr/bin/env bash
# gpu-check.sh: golcm on a GPU through XLA and a PJRT CUDA plugin, checked and timed in one run:
#   env     the plugin, its CUDA libraries, the card, and golcm's backend line
#   tiny    the tiny experiment end to end: train (validation, checkpoints), export, sample from the export
#   resume  a short run killed with SIGKILL mid-run and resumed: it must finish, with the losses of an
#           uninterrupted run
#   bench   bench rows, each -only group in its own process so the card's peak memory is its own: tiny, small,
#           SD 1.5 forward, SD 1.5 full and LoRA distillation steps at a few batch sizes
#   torch   where python3 has PyTorch with CUDA: experiments/gpu-check-torch.py, the same work in
#           PyTorch (the card's matmul rates; SD 1.5 rows where diffusers imports, or DIFFUSERS_SRC
#           names its source folder)
# and prints a summary: per stage its status and seconds, per bench row seconds per step, samples per
# second and device memory.
#
#   experiments/gpu-check.sh [OUTDIR]                 # OUTDIR: default $OUT, else runs/gpu-check
#   GOLCM_BIN=./golcm experiments/gpu-check.sh /tmp/c # a prebuilt binary (no Go needed)
#   GOMLX_BACKEND=go GPU_CHECK_QUICK=1 experiments/gpu-check.sh   # the same checks on a CPU, in minutes
#
# The plugin is, in order: $PJRT_PLUGIN (a path to the .so), $GOMLX_BACKEND when set (used as is, e.g.
# "go" or "xla:/path/plugin.so"), JAX's jax-cuda13-pjrt or jax-cuda12-pjrt wheel found with python3,
# then go-xla's install folders. Nothing is downloaded. The CUDA libraries of the pip wheels
# (site-packages/nvidia/*/lib) go on LD_LIBRARY_PATH, and XLA is pointed at a CUDA folder holding
# nvvm/libdevice, unless XLA_FLAGS already names one.
#
# Environment:
#   GOLCM_BIN            golcm binary; default: built with `go build` (cgo) into the work folder
#   GPU_CHECK_WORK       work folder for runs (default OUTDIR/work, or /tmp/golcm-gpu-check when OUTDIR
#                        is $OUT); OUTDIR gets at most six files: summary.txt, gpu-check.log, bench.txt,
#                        env.txt, tiny-sample.png, and torch.jsonl from the torch stage
#   GPU_CHECK_STAGES     stages to run, default "env tiny resume bench torch"
#   GPU_CHECK_QUICK=1    tiny bench rows only and a shorter resume run (a CPU test of this script)
#   GPU_CHECK_BENCH      bench rows as -only:batch words (batch 0: the row's own), default below
#   GPU_CHECK_MEM_BUDGET GiB a bench row may need for its weights and optimizer state (bench -mem-budget;
#                        default 120, an H200 has about 139)
#   GPU_CHECK_PROBE_S    the most seconds one backend probe of stage env may take (default 150)
#   GPU_CHECK_BUDGET_S   seconds for the whole script (default 540); a row or stage that would start
#                        with less than GPU_CHECK_MIN_S (30) left is skipped, and each one is cut at
#                        the time left
#   GPU_CHECK_RESUME_STEPS, GPU_CHECK_RESUME_RTOL  the resume run's steps (default 60, quick 24) and
#                        the largest relative loss difference allowed (default 0 on the Go backend,
#                        which is deterministic; 1e-4 on XLA, whose GPU kernels are chosen by timing
#                        in each process)
# Exit status: 0 when every stage that ran passed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

OUTDIR=${1:-${OUT:-runs/gpu-check}}
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd)
# Under a device tool that returns $OUT (a few files only), the runs go to a scratch folder.
if [[ -z ${1:-} && -n ${OUT:-} ]]; then
	WORK=${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/golcm-gpu-check}
else
	WORK=${GPU_CHECK_WORK:-$OUTDIR/work}
fi
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd)
LOG=$OUTDIR/gpu-check.log
: >"$LOG"
STAGES=${GPU_CHECK_STAGES:-env tiny resume bench torch}
QUICK=${GPU_CHECK_QUICK:-}
BUDGET=${GPU_CHECK_BUDGET_S:-540}
MIN_S=${GPU_CHECK_MIN_S:-30}
if [[ -n $QUICK ]]; then
	BENCH_ROWS=${GPU_CHECK_BENCH:-tiny:0 tiny:8}
	RESUME_STEPS=${GPU_CHECK_RESUME_STEPS:-24}
else
	# Cheap rows first, so a failure shows before the SD 1.5 compilations; larger batches last.
	BENCH_ROWS=${GPU_CHECK_BENCH:-tiny:0 small:0 sd15-forward:1 sd15-step:4 sd15-lora:4 sd15-forward:8 sd15-step:8 sd15-lora:8 sd15-step:16}
	RESUME_STEPS=${GPU_CHECK_RESUME_STEPS:-60}
fi
START=$(date +%s)
SUMMARY=()
FAILED=0

log() { echo "$*" | tee -a "$LOG"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# record STAGE STATUS SECONDS DETAIL
record() {
	SUMMARY+=("$(printf '%-8s %-8s %8s  %s' "$1" "$2" "$3" "$4")")
	[[ $2 == FAIL ]] && FAILED=1
	log "== $1: $2 ($3 s) $4"
}
# run_logged NAME CMD...: runs CMD with its output in the log and in WORK/NAME.out, cut at the
# time left; returns CMD's status (124 when cut).
run_logged() {
	local name=$1
	shift
	local t
	t=$(left)
	((${RUN_CAP:-0} > 0 && RUN_CAP < t)) && t=$RUN_CAP
	log "\$ $*"
	timeout --signal=KILL "$((t > 1 ? t : 1))" "$@" >"$WORK/$name.out" 2>&1
	local rc=$?
	cat "$WORK/$name.out" >>"$LOG"
	[[ $rc == 137 ]] && rc=124
	return $rc
}

# --- the plugin and its CUDA libraries -----------------------------------------------------------

find_plugin() {
	local p
	for mod in jax_plugins.xla_cuda13 jax_plugins.xla_cuda12; do
		p=$(python3 -c "import importlib.util as u, os, sys
s = u.find_spec('$mod')
sys.exit(1) if s is None else print(os.path.join(s.submodule_search_locations[0], 'xla_cuda_plugin.so'))" 2>/dev/null) &&
			[[ -f $p ]] && echo "$p" && return
	done
	for p in {"$HOME/.local/lib","/usr/local/lib"}/go-xla/{,nvidia/}pjrt_c_api_cuda_plugin.so; do
		[[ -f $p ]] && echo "$p" && return
	done
	return 1
}

# cuda_env PLUGIN: LD_LIBRARY_PATH and XLA_FLAGS for a plugin outside Python. JAX loads the wheels'
# libraries itself before it loads the plugin; a Go program has to name their folders.
cuda_env() {
	local dir site="" d
	dir=$(dirname "$1")
	for d in "$dir/.." "$dir/../.." "$dir/../../.."; do
		[[ -d $d/nvidia ]] && site=$(cd "$d" && pwd) && break
	done
	if [[ -n $site ]]; then
		local libs=""
		for d in "$site"/nvidia/cu13/lib "$site"/nvidia/*/lib; do
			[[ -d $d && :$libs: != *:$d:* ]] && libs=${libs:+$libs:}$d
		done
		export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	fi
	if [[ ${XLA_FLAGS:-} != *xla_gpu_cuda_data_dir* ]]; then
		local nvcc
		nvcc=$(command -v nvcc) && nvcc=$(dirname "$(dirname "$nvcc")")
		for d in ${CUDA_ROOT:-} ${site:+$site/nvidia/cu13 $site/nvidia/cuda_nvcc} ${nvcc:-} /usr/local/cuda; do
			if [[ -d $d/nvvm/libdevice ]]; then
				export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_cuda_data_dir=$d"
				# XLA compiles PTX with ptxas when the plugin does not carry NVIDIA's compiler library.
				[[ -x $d/bin/ptxas ]] && ! command -v ptxas >/dev/null && export PATH=$d/bin:$PATH
				break
			fi
		done
	fi
}

if [[ -n ${PJRT_PLUGIN:-} ]]; then
	[[ -f $PJRT_PLUGIN ]] || { echo "gpu-check: PJRT_PLUGIN=$PJRT_PLUGIN: no such file" >&2; exit 2; }
	PJRT_PLUGIN=$(cd "$(dirname "$PJRT_PLUGIN")" && pwd)/$(basename "$PJRT_PLUGIN")
	export GOMLX_BACKEND="xla:$PJRT_PLUGIN"
elif [[ -n ${GOMLX_BACKEND:-} ]]; then
	p=${GOMLX_BACKEND#xla:}
	p=${p%%,*}
	[[ $GOMLX_BACKEND == xla:* && -f $p ]] && PJRT_PLUGIN=$p
elif PJRT_PLUGIN=$(find_plugin); then
	export GOMLX_BACKEND="xla:$PJRT_PLUGIN"
else
	echo "gpu-check: no PJRT CUDA plugin found: pip install \"jax-cuda13-plugin[with-cuda]\" (README, GPU), or set" \
		"PJRT_PLUGIN=/path/to/xla_cuda_plugin.so; GOMLX_BACKEND=go runs the checks on the CPU" >&2
	exit 2
fi
ORIG_LD=${LD_LIBRARY_PATH:-} ORIG_XF=${XLA_FLAGS:-}
[[ -n ${PJRT_PLUGIN:-} ]] && cuda_env "$PJRT_PLUGIN"
export GOMLX_BACKEND
HAS_SMI=""
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && HAS_SMI=1

# --- the binary --------------------------------------------------------------------------------------

if [[ -n ${GOLCM_BIN:-} ]]; then
	BIN=$(cd "$(dirname "$GOLCM_BIN")" && pwd)/$(basename "$GOLCM_BIN")
elif command -v go >/dev/null; then
	BIN=$WORK/golcm
	t0=$(now)
	log "building golcm with cgo into $BIN"
	if ! CGO_ENABLED=1 go build -o "$BIN" ./experiments >"$WORK/build.out" 2>&1; then
		cat "$WORK/build.out" >>"$LOG"
		record build FAIL "$(since "$t0")" "go build failed: $(tail -1 "$WORK/build.out") (README: Set up)"
		exit 1
	fi
	record build ok "$(since "$t0")" "$BIN"
else
	echo "gpu-check: no golcm binary: set GOLCM_BIN, or install Go to build one" >&2
	exit 2
fi
[[ -x $BIN ]] || { echo "gpu-check: $BIN is not an executable" >&2; exit 2; }

# --- device memory -----------------------------------------------------------------------------------

# The card's memory in use (MiB), sampled every 100 ms while a row runs; the peak less the idle
# level before it is that row's device memory (its allocator's reservation: an upper bound). go-xla
# does not preallocate the card on CUDA by default, so the reservation grows with what a row uses.
gpu_mem_now() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1; }
mem_start() {
	MEM_FILE=$WORK/mem.$1
	MEM_PID=""
	[[ -z $HAS_SMI ]] && return
	MEM_BASE=$(gpu_mem_now)
	(while :; do gpu_mem_now; sleep 0.1; done) >"$MEM_FILE" 2>/dev/null &
	MEM_PID=$!
}
mem_stop() { # prints the peak over the idle level, e.g. "12.3GiB", or "-"
	[[ -z $MEM_PID ]] && { echo -; return; }
	kill "$MEM_PID" 2>/dev/null
	wait "$MEM_PID" 2>/dev/null
	sort -n "$MEM_FILE" | tail -1 | awk -v b="$MEM_BASE" '$1 ~ /^[0-9]+$/ { printf "%.2fGiB", ($1 - b) / 1024; ok = 1 } END { if (!ok) print "-" }'
}

# --- stages ------------------------------------------------------------------------------------------

stage_env() {
	local t0
	t0=$(now)
	{
		echo "date: $(date -u +%FT%TZ)"
		echo "host: $(uname -srm)"
		echo "golcm: $BIN ($(stat -c %s "$BIN") bytes; git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
		echo "GOMLX_BACKEND=$GOMLX_BACKEND"
		echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
		echo "XLA_FLAGS=${XLA_FLAGS:-}"
		echo "ptxas: $(command -v ptxas || echo 'none on PATH')"
		if [[ -n $HAS_SMI ]]; then
			nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
		fi
		if [[ -n ${PJRT_PLUGIN:-} ]]; then
			echo "plugin: $PJRT_PLUGIN ($(stat -c %s "$PJRT_PLUGIN") bytes)"
			echo "plugin libraries not found: $(ldd "$PJRT_PLUGIN" 2>&1 | grep 'not found' | tr -s ' \t' ' ' | tr '\n' ';')"
			python3 -m pip list 2>/dev/null | grep -Ei '^(jax|jaxlib|jax-cuda[0-9a-z-]*|nvidia-[0-9a-z-]*|torch)[[:space:]]' || true
		fi
	} >"$OUTDIR/env.txt" 2>&1
	cat "$OUTDIR/env.txt" >>"$LOG"
	# The probe: the tiny bench rows (reused as the bench's tiny:0 row), so the plugin loads, XLA
	# compiles (libdevice, ptxas) and runs. The library path and XLA_FLAGS set above are the first
	# try; without either (the plugin's own RPATH, XLA's own search) the next ones, so one run on a
	# GPU machine finds what works. Each try is cut at GPU_CHECK_PROBE_S (default 150).
	local tries=("${LD_LIBRARY_PATH:-}|${XLA_FLAGS:-}") try seen="" n=0
	[[ -n ${PJRT_PLUGIN:-} ]] && tries+=("$ORIG_LD|${XLA_FLAGS:-}" "${LD_LIBRARY_PATH:-}|$ORIG_XF" "$ORIG_LD|$ORIG_XF")
	for try in "${tries[@]}"; do
		[[ $seen == *"<$try>"* ]] && continue
		seen+="<$try>"
		n=$((n + 1))
		export LD_LIBRARY_PATH=${try%%|*} XLA_FLAGS=${try#*|}
		log "probe $n: LD_LIBRARY_PATH=$LD_LIBRARY_PATH XLA_FLAGS=$XLA_FLAGS"
		mem_start probe
		local rc=0
		RUN_CAP=${GPU_CHECK_PROBE_S:-150} run_logged backend "$BIN" bench -only tiny || rc=$?
		if ((rc == 0)); then
			PROBE_MEM=$(mem_stop)
			record env ok "$(since "$t0")" "probe $n ran; $(grep -m1 '^backend:' "$WORK/backend.out")"
			echo "probe $n ran: LD_LIBRARY_PATH=$LD_LIBRARY_PATH XLA_FLAGS=$XLA_FLAGS" >>"$OUTDIR/env.txt"
			return
		fi
		mem_stop >/dev/null
		((rc == 124)) && echo "(cut after ${GPU_CHECK_PROBE_S:-150} s: GPU_CHECK_PROBE_S)" >>"$WORK/backend.out"
		(($(left) < MIN_S)) && break
	done
	record env FAIL "$(since "$t0")" "golcm did not run on $GOMLX_BACKEND ($n tries, see the log): $(grep -v '^\s*$' "$WORK/backend.out" | tail -1 | cut -c1-300)"
	ENV_FAILED=1
}

TINY_TEACHER=$WORK/tiny-teacher

stage_tiny() {
	local t0 out=$WORK/tiny
	rm -rf "$out"
	t0=$(now)
	# tiny.toml's own settings, spelled out because the checks below name their files.
	if ! run_logged tiny-train "$BIN" -f experiments/tiny.toml -no-progress -set "model.path=$TINY_TEACHER" \
		-set "run.output_dir=$out" -set optim.max_train_steps=30 -set run.checkpoint_every=10 \
		-set run.validation_every=15; then
		record tiny FAIL "$(since "$t0")" "training failed: $(tail -1 "$WORK/tiny-train.out")"
		return
	fi
	local train_s missing=""
	train_s=$(since "$t0")
	for f in model_index.json unet/config.json metrics.jsonl checkpoints/step-00000030/state.json \
		validation/student-step-00000030.png; do
		[[ -e $out/$f ]] || missing+=" $f"
	done
	if [[ -n $missing ]]; then
		record tiny FAIL "$train_s" "artifacts missing:$missing"
		return
	fi
	local t1
	t1=$(now)
	if ! run_logged tiny-sample "$BIN" sample -model "$out" -prompt "a red circle on a white background" \
		-steps 4 -out "$OUTDIR/tiny-sample.png" || [[ ! -s $OUTDIR/tiny-sample.png ]]; then
		record tiny FAIL "$(since "$t0")" "sampling from the export failed: $(tail -1 "$WORK/tiny-sample.out")"
		return
	fi
	local loss
	loss=$(tail -1 "$out/metrics.jsonl" | sed -n 's/.*"loss"[[:space:]]*:[[:space:]]*\([-+0-9.eE]*\).*/\1/p')
	record tiny ok "$(since "$t0")" "train+validate+checkpoint+export ${train_s} s (last loss $loss), 4-step sample $(since "$t1") s"
}

# losses FILE: "step loss" per logged step, the last line of each step winning.
losses() {
	sed -n 's/.*"loss"[[:space:]]*:[[:space:]]*\([-+0-9.eE]*\).*"step"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\2 \1/p' "$1" |
		awk '{ l[$1] = $2 } END { for (s in l) print s, l[s] }' | sort -n
}

stage_resume() {
	local t0 whole=$WORK/resume-whole killed=$WORK/resume-killed every=$((RESUME_STEPS / 6))
	local args=(-f experiments/tiny.toml -no-progress -set "model.path=$TINY_TEACHER"
		-set "optim.max_train_steps=$RESUME_STEPS" -set "run.checkpoint_every=$every"
		-set run.log_every=1 -set run.validation_every=0)
	rm -rf "$whole" "$killed"
	t0=$(now)
	if ! run_logged resume-whole "$BIN" "${args[@]}" -set "run.output_dir=$whole"; then
		record resume FAIL "$(since "$t0")" "the uninterrupted run failed: $(tail -1 "$WORK/resume-whole.out")"
		return
	fi
	# The killed run: SIGKILL once it is past half way (at least one checkpoint behind it).
	local kill_at=$((RESUME_STEPS / 2)) pid step=0
	log "\$ $BIN ${args[*]} -set run.output_dir=$killed &   # killed with SIGKILL after step $kill_at"
	"$BIN" "${args[@]}" -set "run.output_dir=$killed" >"$WORK/resume-killed.out" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null && ((step < kill_at)) && (($(left) > 0)); do
		sleep 0.05
		step=$(tail -1 "$killed/metrics.jsonl" 2>/dev/null | sed -n 's/.*"step"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p')
		step=${step:-0}
	done
	if ! kill -9 "$pid" 2>/dev/null; then
		wait "$pid"
		record resume FAIL "$(since "$t0")" "the run ended (status $?) before the kill at step $kill_at; raise GPU_CHECK_RESUME_STEPS"
		return
	fi
	wait "$pid" 2>/dev/null
	cat "$WORK/resume-killed.out" >>"$LOG"
	log "killed at step $step"
	if ! run_logged resume-resumed "$BIN" "${args[@]}" -set "run.output_dir=$killed" -set run.resume=latest; then
		record resume FAIL "$(since "$t0")" "the resumed run failed: $(tail -1 "$WORK/resume-resumed.out")"
		return
	fi
	local final
	final=$(printf '%s/checkpoints/step-%08d/state.json' "$killed" "$RESUME_STEPS")
	if [[ ! -f $final ]]; then
		record resume FAIL "$(since "$t0")" "the resumed run did not finish: no $final"
		return
	fi
	local rtol=${GPU_CHECK_RESUME_RTOL:-}
	[[ -z $rtol ]] && { [[ $GOMLX_BACKEND == go* ]] && rtol=0 || rtol=1e-4; }
	local verdict
	verdict=$(awk -v n="$RESUME_STEPS" -v tol="$rtol" '
			NR == FNR { whole[$1] = $2; next }
			!($1 in whole) { next }
			{ $3 = $2; $2 = whole[$1]; d = $2 - $3; if (d < 0) d = -d; m = ($2 < 0 ? -$2 : $2); r = m > 0 ? d / m : d
			  if (r > worst) { worst = r; at = $1 } ; k++ }
			END { if (k != n) { printf "FAIL %d of %d steps logged in both runs", k, n; exit }
			      printf "%s %d steps, largest relative loss difference %.3g (step %s; allowed %s)",
			             (worst <= tol ? "ok" : "FAIL"), k, worst, at ? at : "-", tol }' \
		<(losses "$whole/metrics.jsonl") <(losses "$killed/metrics.jsonl"))
	local from
	from=$(sed -n 's/^resuming from .* at step \([0-9]*\).*/\1/p' "$WORK/resume-resumed.out" | head -1)
	record resume "${verdict%% *}" "$(since "$t0")" "killed after step $step of $RESUME_STEPS, resumed at step ${from:-?}; ${verdict#* }"
}

# field HEADER LINE NAME: the value in LINE under the right-aligned column NAME of HEADER.
field() {
	awk -v h="$1" -v l="$2" -v n="$3" 'BEGIN { i = index(h, " " n " ") ; if (!i) i = index(h, " " n)
		if (!i) { print "-"; exit } ; e = i + length(n); s = substr(l, 1, e); sub(/.* /, "", s); print s }'
}

stage_bench() {
	local t0 rows=() header="" failed=0
	t0=$(now)
	: >"$OUTDIR/bench.txt"
	for spec in $BENCH_ROWS; do
		local only=${spec%%:*} batch=${spec#*:}
		if (($(left) < MIN_S)); then
			rows+=("$(printf '%-28s %s' "$spec" "skipped: GPU_CHECK_BUDGET_S=$BUDGET spent")")
			continue
		fi
		local r0 rc=0 mem out=$WORK/bench-$only-$batch.out
		if [[ $spec == tiny:0 && -n ${PROBE_MEM:-} ]]; then
			cp "$WORK/backend.out" "$out" # the env probe ran these rows already
			mem=$PROBE_MEM
		else
			mem_start "$only-$batch"
			r0=$(now)
			run_logged "bench-$only-$batch" "$BIN" bench -only "$only" -batch "$batch" -mem-budget "${GPU_CHECK_MEM_BUDGET:-120}"
			rc=$?
			mem=$(mem_stop)
		fi
		cat "$out" >>"$OUTDIR/bench.txt"
		if ((rc != 0)); then
			local why="failed (status $rc): $(grep -v '^\s*$' "$out" | tail -1 | cut -c1-160)"
			((rc == 124)) && why="cut at the budget after $(since "$r0") s"
			rows+=("$(printf '%-28s %s' "$spec" "$why")")
			# A row too big for the card is a finding, not a broken check.
			grep -qiE 'out of memory|RESOURCE_EXHAUSTED' "$out" || ((rc == 124)) || failed=1
			continue
		fi
		header=$(grep -m1 '^unet ' "$out")
		while IFS= read -r line; do
			local b s sps
			b=$(field "$header" "$line" batch)
			s=$(field "$header" "$line" run_s)
			sps=$(awk -v b="$b" -v s="$s" 'BEGIN { if (s > 0) printf "%.2f", b / s; else print "-" }')
			rows+=("$(printf '%-28s %s %10s %10s' "$spec" "$line" "$sps" "$mem")")
		done < <(awk 'f && NF; /^unet /{ f = 1 }' "$out")
	done
	{
		printf '%-28s %s %10s %10s\n' "bench -only:-batch" "${header:-(no row ran)}" samples_s device_mem
		printf '%s\n' "${rows[@]}"
	} >"$WORK/bench-table.txt"
	cat "$WORK/bench-table.txt" >>"$OUTDIR/bench.txt"
	record bench "$( ((failed)) && echo FAIL || echo ok)" "$(since "$t0")" "rows: $BENCH_ROWS"
}

stage_torch() {
	local t0
	t0=$(now)
	if ! python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
		record torch skipped "$(since "$t0")" "no PyTorch with CUDA in python3"
		return
	fi
	if ! run_logged torch python3 experiments/gpu-check-torch.py --budget-s "$(($(left) - 20))"; then
		record torch FAIL "$(since "$t0")" "$(tail -1 "$WORK/torch.out")"
		return
	fi
	grep '^{' "$WORK/torch.out" >"$OUTDIR/torch.jsonl"
	record torch ok "$(since "$t0")" "$(grep -c '"seconds"' "$OUTDIR/torch.jsonl") rows timed, in torch.jsonl"
}

ENV_FAILED=""
for stage in $STAGES; do
	if [[ -n $ENV_FAILED && $stage != torch ]]; then
		record "$stage" skipped 0 "golcm does not run on this backend (stage env)"
		continue
	fi
	if (($(left) < MIN_S)); then
		record "$stage" skipped 0 "GPU_CHECK_BUDGET_S=$BUDGET spent"
		continue
	fi
	case $stage in
	env | tiny | resume | bench | torch) "stage_$stage" ;;
	*) record "$stage" FAIL 0 "unknown stage (choices: env tiny resume bench torch)" ;;
	esac
done

{
	echo "gpu-check $(date -u +%FT%TZ), $(($(date +%s) - START)) s, backend $GOMLX_BACKEND"
	grep -m1 '^backend:' "$WORK/backend.out" 2>/dev/null
	printf '%-8s %-8s %8s  %s\n' stage status seconds detail
	printf '%s\n' "${SUMMARY[@]}"
	[[ -f $WORK/bench-table.txt ]] && echo && cat "$WORK/bench-table.txt"
	[[ -s $OUTDIR/torch.jsonl ]] && echo && echo "PyTorch on the same machine:" && cat "$OUTDIR/torch.jsonl"
} >"$OUTDIR/summary.txt"
echo
cat "$OUTDIR/summary.txt"
exit "$FAILED"
