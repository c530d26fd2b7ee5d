#!/usr/bin/env bash
# The test suite (installs what it needs first). Extra arguments go to pytest, e.g. -m slow.
set -euo pipefail
EXTRAS=test source "$(dirname "$0")/_venv.sh"
exec .venv/bin/python -m pytest "$@"
