#!/usr/bin/env sh
# Audit portal's locked dependency set for known vulnerabilities (PyPI advisory DB / OSV).
# Needs network access to the vulnerability database; CI does not depend on it passing.
# Usage: .ci/audit.sh [python [pip-audit flags...]]   (default: .venv/bin/python)
set -eu
PY="${1:-.venv/bin/python}"
[ "$#" -gt 0 ] && shift
"$PY" -m pip install --quiet "pip-audit>=2.7"
# the installed environment is the locked set: audit exactly what is installed
exec "$PY" -m pip_audit --progress-spinner off --desc on "$@"
