#!/usr/bin/env bash
# Executes every GoNB notebook in notebooks/ and fails on the first cell error.
#
# Installs, skipping whatever is already there: Jupyter's nbconvert from Debian's packages, and GoNB
# with its goimports and gopls from the Go module proxy; then registers the GoNB kernel. The notebooks
# run from notebooks/ (they find the checkout at "..") and their executed copies go to a temporary
# folder, so CI never rewrites the committed notebooks.
#
# usage: .ci/notebooks.sh            # CI: execute into a temporary folder
#        .ci/notebooks.sh --update   # execute in place, refreshing the outputs to commit
#        .ci/notebooks.sh [--update] notebooks/data.ipynb ...   # only these
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

gonb_version=v0.11.3
goimports_version=v0.52.0 # golang.org/x/tools
gopls_version=v0.20.0

update=false
notebooks=()
for arg in "$@"; do
	case "$arg" in
	--update) update=true ;;
	*.ipynb) notebooks+=("$arg") ;;
	*) echo "notebooks.sh: unknown argument $arg (want --update or notebook paths)" >&2; exit 2 ;;
	esac
done
if [ ${#notebooks[@]} -eq 0 ]; then
	notebooks=(notebooks/*.ipynb)
fi

export PATH="$PATH:/usr/local/go/bin"
# go.mod needs Go 1.27.3 (fetched from the module proxy); GoNB's builds inherit both settings.
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
gobin=$(go env GOBIN)
gobin=${gobin:-$(go env GOPATH)/bin}
export PATH="$gobin:$PATH"
mkdir -p "$gobin"

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian's Python: a pyenv or venv python3 earlier in PATH must not shadow the packaged Jupyter.
jupyter=/usr/bin/jupyter
if ! [ -x /usr/bin/jupyter-nbconvert ] || ! /usr/bin/python3 -c 'import nbclient, jupyter_client' 2>/dev/null; then
	echo "== installing Jupyter nbconvert from Debian"
	pkgs=(jupyter-nbconvert jupyter-client python3-nbclient)
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get install -y -q --no-install-recommends "${pkgs[@]}" ||
		{ as_root apt-get update -q && as_root apt-get install -y -q --no-install-recommends "${pkgs[@]}"; }
fi

# installed_version BINARY MODULE prints the version of MODULE that BINARY was built from.
installed_version() {
	[ -x "$1" ] && go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
}

if [ "$(installed_version "$gobin/goimports" golang.org/x/tools)" != "$goimports_version" ]; then
	echo "== installing goimports $goimports_version"
	go install "golang.org/x/tools/cmd/goimports@$goimports_version"
fi
if [ "$(installed_version "$gobin/gopls" golang.org/x/tools/gopls)" != "$gopls_version" ]; then
	echo "== installing gopls $gopls_version"
	go install "golang.org/x/tools/gopls@$gopls_version"
fi
if [ "$(installed_version "$gobin/gonb" github.com/janpfeifer/gonb)" != "$gonb_version" ]; then
	# `go install github.com/janpfeifer/gonb@v0.11.3` is refused (the proxy does not list the module's
	# versions), but requiring that version from a throwaway module and building it works.
	echo "== building GoNB $gonb_version"
	build=$(mktemp -d)
	(
		cd "$build"
		go mod init golcm.ci/gonb >/dev/null 2>&1
		go get "github.com/janpfeifer/gonb@$gonb_version"
		go build -o "$gobin/gonb" github.com/janpfeifer/gonb
	)
	rm -rf "$build"
fi

kernel_json=$("$jupyter" --data-dir)/kernels/gonb/kernel.json
if ! [ -f "$kernel_json" ] || ! grep -qF "\"$gobin/gonb\"" "$kernel_json"; then
	echo "== registering the GoNB kernel"
	gonb --install --logtostderr
fi

echo "== $(go version), GoNB $(installed_version "$gobin/gonb" github.com/janpfeifer/gonb), nbconvert $("$jupyter" nbconvert --version)"

# GoNB v0.11.3 reports a compile error as a cell error, which stops nbconvert, but a program that
# panics or exits non-zero only gets "exit status N" (or "signal: ...") appended to its stderr, and
# the cell counts as run. check_outputs fails on those too.
check_outputs() {
	/usr/bin/python3 - "$1" <<'PY'
import json, re, sys
nb = json.load(open(sys.argv[1]))
failed = re.compile(r"^(exit status \d+|signal: .+)$", re.M)
for i, cell in enumerate(nb["cells"]):
    for out in cell.get("outputs", []):
        text = "".join(out.get("text", ""))
        if out.get("output_type") == "stream" and out.get("name") == "stderr" and failed.search(text):
            src = "".join(cell["source"])
            sys.exit(f"{sys.argv[1]}: cell {i + 1} failed:\n--- source\n{src}\n--- stderr\n{text}")
PY
}

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for nb in "${notebooks[@]}"; do
	echo "== executing $nb"
	start=$SECONDS
	args=(--to notebook --execute --ExecutePreprocessor.kernel_name=gonb --ExecutePreprocessor.timeout=600)
	if $update; then
		args+=(--inplace)
	else
		# The kernel still starts in the notebook's own folder; only the executed copy goes to $out.
		args+=(--output-dir "$out")
	fi
	if ! "$jupyter" nbconvert "${args[@]}" "$nb"; then
		echo "notebooks.sh: $nb failed (see the cell error above)" >&2
		exit 1
	fi
	if $update; then executed=$nb; else executed=$out/$(basename "$nb"); fi
	check_outputs "$executed"
	echo "== $nb ran in $((SECONDS - start))s"
done
echo "== all ${#notebooks[@]} notebooks executed in ${SECONDS}s"
