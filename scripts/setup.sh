#!/usr/bin/env bash
# Set up NAS-Assist on a fresh machine: a virtual environment in .venv with a CPU build
# of PyTorch (pinned: an unpinned `torch` pulls a multi-GB CUDA build) and the package
# installed editable with its test and NNI extras. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# bubblewrap + libseccomp: the OS isolation that LLM-written model code runs under (without them
# `nasassist improve` does not run generated code and uses the offline mutator only).
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bubblewrap libseccomp2 >/dev/null; } \
        || echo "warning: could not install bubblewrap; generated model code will not be executed" >&2
fi
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install --quiet --upgrade pip
if ! "$VPY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
    # PIP_INDEX_URL / PIP_EXTRA_INDEX_URL may point pip at PyTorch's CPU wheel index elsewhere.
    "$VPY" -m pip install --quiet "torch==$TORCH_VERSION"
fi
"$VPY" -m pip install --quiet -e ".[test,nni]"
echo "NAS-Assist is set up in $(pwd)/.venv (torch $("$VPY" -c 'import torch; print(torch.__version__)'))"
