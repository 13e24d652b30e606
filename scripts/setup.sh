#!/usr/bin/env bash
# Set up NAS-Assist on a fresh machine: a virtual environment in .venv with a CPU build
# of PyTorch (pinned: an unpinned `torch` pulls a multi-GB CUDA build) and the package
# installed editable with its test, NNI, docs and ecosystem extras.
#
# Safe and fast to run again: a stamp in .venv records the inputs of the last successful
# set-up (pyproject.toml, setup.py, this script, Python, torch version, extras); when they
# are unchanged the script says so and returns at once. FORCE=1 redoes every step.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
EXTRAS=${NASASSIST_EXTRAS:-test,nni,docs,ecosystem}
VPY=.venv/bin/python
STAMP=.venv/.nasassist-setup-stamp
PIP_QUIET=(--quiet --disable-pip-version-check)

started=$SECONDS
step() { printf '[setup %3ss] %s\n' "$((SECONDS - started))" "$*"; }

# pip, quiet. A pip configuration that names local index folders which do not exist (as on
# some shared machines) makes pip print "Location ... is ignored" for every package: that is
# the machine's configuration, not ours, so those lines alone are held back
# (NASASSIST_SETUP_VERBOSE=1 shows everything pip says).
vpip() {
    if [ "${NASASSIST_SETUP_VERBOSE:-0}" = 1 ]; then
        "$VPY" -m pip install "$@"
    else
        "$VPY" -m pip install "${PIP_QUIET[@]}" "$@" 2>&1 \
            | { grep -v "^WARNING: Location 'file:.*' is ignored: it is neither a file nor a directory\.$" || true; }
    fi
}

inputs_hash() {
    {
        cat pyproject.toml setup.py scripts/setup.sh
        "$PYTHON" -c 'import sys; print(sys.version)'
        echo "torch=$TORCH_VERSION extras=$EXTRAS"
    } | sha256sum | cut -d' ' -f1
}

wanted=$(inputs_hash)
if [ "${FORCE:-0}" != 1 ] && [ -x "$VPY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
    step "up to date: .venv matches pyproject.toml, setup.py and this script (FORCE=1 redoes it)"
    exit 0
fi
rm -f "$STAMP"

# bubblewrap + libseccomp: the OS isolation that LLM-written model code runs under (without them
# `nasassist improve` does not run generated code and uses the offline mutator only).
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    step "installing Debian's bubblewrap and libseccomp2 (the sandbox for generated model code)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bubblewrap libseccomp2 >/dev/null; } \
        || step "warning: could not install bubblewrap; generated model code will not be executed"
fi

if [ ! -x "$VPY" ]; then
    step "creating the virtual environment .venv ($("$PYTHON" --version))"
    "$PYTHON" -m venv .venv
fi

step "upgrading pip in .venv"
vpip --upgrade pip

have_torch=$("$VPY" -c 'from importlib.metadata import version
try: print(version("torch"))
except Exception: print("none")')
if [[ "$have_torch" != "$TORCH_VERSION"* ]]; then
    # PIP_INDEX_URL / PIP_EXTRA_INDEX_URL may point pip at PyTorch's CPU wheel index elsewhere.
    step "installing torch==$TORCH_VERSION (CPU build; the largest download, a few minutes)"
    vpip "torch==$TORCH_VERSION"
else
    step "torch $have_torch already installed"
fi

step "installing NAS-Assist editable with extras [$EXTRAS] and their dependencies"
vpip -e ".[$EXTRAS]"

# Optional Debian packages: tests that need them skip with a reason when they are absent.
missing=()
command -v dot >/dev/null 2>&1 || missing+=("graphviz (graph drawings with dot; a matplotlib layout is used otherwise)")
{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } \
    || missing+=("chromium + chromium-driver (the optuna-dashboard browser check)")
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
    || missing+=("postgresql (the distributed Optuna tests)")
for item in "${missing[@]}"; do
    step "optional, not installed: $item"
done
[ ${#missing[@]} -eq 0 ] || step "(Debian: apt-get install graphviz chromium chromium-driver postgresql; .ci/run does)"

echo "$wanted" > "$STAMP"
step "done: NAS-Assist is set up in $(pwd)/.venv (torch $("$VPY" -c 'from importlib.metadata import version; print(version("torch"))'))"
