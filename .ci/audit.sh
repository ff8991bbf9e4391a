#!/usr/bin/env sh
# Audit the installed (locked) dependency set for known vulnerabilities: .ci/audit.py.
# Live: PyPI's project JSON (advisories for each package's latest release); offline: an
# optional PyPA advisory-database snapshot (--osv-dir). Exit 1 on a vulnerability not listed in
# .ci/audit-ignore.txt; network trouble is a warning (exit 0) unless --strict (exit 3).
# Usage: .ci/audit.sh [python [audit.py flags...]]   (default: .venv/bin/python)
set -eu
PY="${1:-.venv/bin/python}"
[ "$#" -gt 0 ] && shift
exec "$PY" "$(dirname "$0")/audit.py" --python "$PY" "$@"
