#!/usr/bin/env bash
# Style gate (run by CI before the tests): ruff lint + ruff format check over the whole tree.
# `bash scripts/lint.sh --fix` applies the safe fixes and formats instead of checking.
set -euo pipefail
EXTRAS=test source "$(dirname "$0")/_venv.sh"
if [ "${1:-}" = "--fix" ]; then
    .venv/bin/ruff check --fix .
    exec .venv/bin/ruff format .
fi
.venv/bin/ruff check .
exec .venv/bin/ruff format --check .
