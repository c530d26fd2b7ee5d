# Sourced by main.sh and test.sh: make .venv (once) and install omnimask with the tested pins.
# PYTHON picks the interpreter (default python3; the pins in constraints.txt need 3.11+). EXTRAS adds optional dependency groups.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "omnimask: creating .venv with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv .venv
fi
spec="."
[ -n "${EXTRAS:-}" ] && spec=".[${EXTRAS}]"
echo "omnimask: installing $spec with the pins in constraints.txt (first run downloads PyTorch, ~2 minutes)"
.venv/bin/python -m pip install --disable-pip-version-check -q -c constraints.txt -e "$spec"
