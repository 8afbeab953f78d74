#!/usr/bin/env bash
# Creates .venv (Python 3.12) and installs fxport with its pinned dependencies. Idempotent: when
# pyproject.toml has not changed since the last install it returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    echo "fxport: error: Python 3.12 not found (ttnn wheels exist for CPython 3.10 and 3.12 only)" >&2
    return 1
}

# The report layout test (tests/test_report_layout.py) opens the HTML pages in a headless
# Chromium. Installed when missing and this is root with apt-get (CI); otherwise said once.
if ! command -v chromium >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "fxport: installing chromium (the report layout test's headless browser)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "fxport: note: no chromium: the report layout test needs it (apt-get install chromium)" >&2
    fi
fi

stamp=.venv/.fxport-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ -x .venv/bin/python && -f $stamp && "$(cat $stamp)" == "$want" ]]; then
    exit 0
fi
if [[ ! -x .venv/bin/python ]]; then
    "$(find_python)" -m venv .venv
fi
echo "fxport: installing dependencies into .venv (first time: a few minutes, ~6 GB for torch)" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "$want" > "$stamp"
