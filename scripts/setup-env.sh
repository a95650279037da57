#!/usr/bin/env bash
# Create or refresh the project's own virtualenv (.venv) with the given pip extras.
# Idempotent and quick when nothing changed: a stamp records the hash of every file that
# decides what gets installed; a matching stamp skips pip entirely.
#   scripts/setup-env.sh cpu        # what the default path needs (compile/verify/bench on ONNX Runtime)
#   scripts/setup-env.sh mobile     # + LiteRT and ExecuTorch (android, rpi targets)
#   scripts/setup-env.sh tvm        # cpu + Apache TVM, the aarch64 cross linker, nvcc (jetson, cpu-tvm targets)
#   scripts/setup-env.sh web        # cpu + the TF.js converter venv (.venv-tfjs), npm ci, Chromium (browser target)
#   scripts/setup-env.sh arm64      # cpu + QEMU user mode and debootstrap (`edgekit device start arm64`)
#   scripts/setup-env.sh dev        # + test tools (a superset of mobile, tvm, web and arm64)
#
# Apache TVM is installed in a second step with --no-deps (scripts/pip-nodeps-tvm.txt): its
# apache-tvm-ffi needs typing-extensions >= 4.13, while litert-torch's xdsl==0.28 declares < 4.13.
# Both work with 4.15 (the test suite runs LiteRT and TVM in this one environment); `pip check`
# reports that one xdsl line, and only that (tests/test_bare_install.py checks it).
#
# The TF.js converter (onnx2tf + tensorflowjs) pins numpy 1.26 / TensorFlow 2.19 and gets its own
# venv, .venv-tfjs, from the complete pinned list scripts/requirements-tfjs.txt (--no-deps: the list
# is the resolution). Node packages come from package-lock.json (npm ci).
set -euo pipefail
extras="${1:-cpu}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${EDGEKIT_VENV:-$root/.venv}"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3

# Debian packages a target needs are listed in scripts/apt-<extra>.txt (none for cpu/dev yet).
want_for() {
  { echo "$1"; cat "$root/pyproject.toml" "$0" "$root/scripts/pip-nodeps-tvm.txt"
    [ -f "$root/scripts/apt-$1.txt" ] && cat "$root/scripts/apt-$1.txt"; true; } \
    | cat - "$root/scripts/requirements-tfjs.txt" "$root/package-lock.json" | sha256sum | cut -d' ' -f1
}
stamp_ok() {
  [ -f "$venv/.edgekit-stamp-$1" ] && [ "$(cat "$venv/.edgekit-stamp-$1")" = "$(want_for "$1")" ] || return 1
  case "$1" in web|dev) [ -x "${EDGEKIT_TFJS_VENV:-$root/.venv-tfjs}/bin/python" ] && [ -d "$root/node_modules/@tensorflow/tfjs" ] ;; esac
}

if [ -x "$venv/bin/python" ]; then
  stamp_ok "$extras" && exit 0
  # dev includes everything mobile and tvm need; each of those everything cpu needs
  case "$extras" in cpu|mobile|tvm|web|arm64) stamp_ok dev && exit 0 ;; esac
  [ "$extras" = cpu ] && { stamp_ok mobile || stamp_ok tvm || stamp_ok web; } && exit 0
fi

apt_list="$root/scripts/apt-$extras.txt"
if [ -f "$apt_list" ] && grep -qv '^\s*\(#\|$\)' "$apt_list"; then
  pkgs=$(grep -v '^\s*\(#\|$\)' "$apt_list" | tr '\n' ' ')
  missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    echo "edgekit setup: apt-get install $missing" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
  fi
fi

tfjs_pid="" tfjs_log=""
# A failed main install (set -e) must not leave the background TF.js install running, nor its log in /tmp.
trap 'if [ -n "$tfjs_pid" ]; then kill "$tfjs_pid" 2>/dev/null || true; fi; rm -f "$tfjs_log"' EXIT
case "$extras" in web|dev)
  tfjs_venv="${EDGEKIT_TFJS_VENV:-$root/.venv-tfjs}"
  tfjs_log="$(mktemp -t edgekit-setup-tfjs.XXXXXX)"
  echo "edgekit setup: TF.js converter venv $tfjs_venv (onnx2tf, TensorFlow 2.19, tensorflowjs; ~2.6 GB), beside the main one" >&2
  # In the background while the main venv installs: two unrelated venvs, and pip keeps about one core
  # busy, so on 2 cores this saves a minute or more of a fresh setup. Its output is shown when it ends.
  ( [ -x "$tfjs_venv/bin/python" ] || "$py" -m venv "$tfjs_venv"
    grep -v '^\s*\(#\|$\)' "$root/scripts/requirements-tfjs.txt" \
      | xargs "$tfjs_venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps ) >"$tfjs_log" 2>&1 &
  tfjs_pid=$!
esac

echo "edgekit setup: installing .[${extras}] into $venv (first run takes a few minutes)" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
# torch first and alone, pinned: pip takes the CPU wheel; an unpinned resolve pulls a CUDA build.
"$venv/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[$extras]" >&2
case "$extras" in tvm|dev)
  grep -v '^\s*\(#\|$\)' "$root/scripts/pip-nodeps-tvm.txt" \
    | xargs "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps >&2 ;;
esac
case "$extras" in web|dev)
  if ! wait "$tfjs_pid"; then
    cat "$tfjs_log" >&2; rm -f "$tfjs_log"
    echo "edgekit setup: installing the TF.js converter venv $tfjs_venv failed (pip's output above)" >&2
    exit 1
  fi
  tfjs_pid=""
  cat "$tfjs_log" >&2; rm -f "$tfjs_log"
  if ! command -v npm >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >&2
  fi
  echo "edgekit setup: npm ci (@tensorflow/tfjs, pinned by package-lock.json)" >&2
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >&2) ;;
esac
want_for "$extras" > "$venv/.edgekit-stamp-$extras"
