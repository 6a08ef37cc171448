#!/usr/bin/env bash
# Run the test suite on another Python and/or torch than CI's (CPython 3.11 + torch 2.13.0 CPU).
#
#   bash tools/compat.sh PYTHON [TORCH_REQUIREMENT [EXTRA_REQUIREMENT...]]
#   bash tools/compat.sh ~/.pyenv/versions/3.10.13/bin/python                    # Python 3.10, torch 2.13.0
#   bash tools/compat.sh ~/.pyenv/versions/3.11.7/bin/python "torch==2.4.1" "numpy<2"   # the oldest torch allowed
#
# A fresh clone of this checkout's HEAD and a fresh venv under ${COMPAT_DIR:-/tmp/lrkit-compat}/<name>; torch
# first (from the package index: outside CPython 3.11 that is the CUDA build, several GB), then `.[test]`, then
# pytest. Nothing in the checkout is touched.
set -euo pipefail
python_bin=${1:?usage: bash tools/compat.sh PYTHON [TORCH_REQUIREMENT [EXTRA_REQUIREMENT...]]}
torch_req=${2:-torch==2.13.0}
shift $(( $# > 1 ? 2 : 1 ))
repo=$(cd "$(dirname "$0")/.." && pwd)
version=$("$python_bin" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
name="py${version}-$(echo "$torch_req" | tr -c 'A-Za-z0-9.\n' '_')"
dir=${COMPAT_DIR:-/tmp/lrkit-compat}/$name
rm -rf "$dir" && mkdir -p "$dir"
git clone -q "$repo" "$dir/lrkit"
"$python_bin" -m venv "$dir/venv"
py=$dir/venv/bin/python
"$py" -m pip install -q --upgrade pip "setuptools>=77"
"$py" -m pip install -q "$torch_req" "$@"
cd "$dir/lrkit"
"$py" -m pip install -q -e ".[test]"
"$py" -c 'import sys, torch, numpy; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}")'
"$py" -m pytest -p no:randomly -rfE
