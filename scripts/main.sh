#!/usr/bin/env bash
# Set up (if needed) and run the main job: an Optuna study with NASAssistSampler and
# NASAssistPruner searching a CNN space on scikit-learn's digits (offline, no API key,
# a few minutes on 2 CPU cores). Extra arguments go to examples/optuna_quickstart.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/optuna_quickstart.py "$@"
