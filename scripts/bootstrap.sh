#!/usr/bin/env bash
# Set up a fresh Debian machine for mcuforge: system packages (apt-get when
# root, otherwise a message naming them), then .venv with the project.
#   scripts/bootstrap.sh demo   - what `make demo` needs
#   scripts/bootstrap.sh test   - what `make test` needs (cross compiler, QEMU, CMake, Ninja)
set -euo pipefail
what=${1:-test}
cd "$(dirname "$0")/.."

pkgs=(gcc python3-venv python3-dev)
if [ "$what" = test ]; then
  pkgs+=(cmake ninja-build gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm espeak-ng)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
    echo "bootstrap: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
stamp=.venv/.installed-$what
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/test-constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and pinned: a bare 'torch' requirement would pull a CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0
  if [ "$what" = test ]; then
    .venv/bin/python -m pip install -q -e ".[torch,plot,test]" -c scripts/test-constraints.txt
  else
    .venv/bin/python -m pip install -q -e ".[torch,plot]" scikit-learn
  fi
  touch "$stamp"
fi
