#!/usr/bin/env bash
# Set up (if needed) and run the main job. Until the Optuna plugin lands, the main job
# traces a user model, its ONNX export and a benchmark cell into one graph space.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/graph_quickstart.py "$@"
