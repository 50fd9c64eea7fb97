#!/usr/bin/env bash
# Installs the build into a scratch prefix, builds tests/install/consumer against it with
# find_package(dlasim), runs it, and imports the installed dlasim Python package with a
# clean environment (no PYTHONPATH to the source tree, no DLASIM_QAT_LIBRARY).
# Usage: run_consumer.sh BUILD_DIR SOURCE_DIR [with-python]
set -euo pipefail
build=$1
src=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build" --prefix "$scratch/prefix" > "$scratch/install.log"
cmake -S "$src/tests/install/consumer" -B "$scratch/build" -G Ninja -DCMAKE_PREFIX_PATH="$scratch/prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="${DLA_CONSUMER_CXX_FLAGS:-}" \
  -DCMAKE_EXE_LINKER_FLAGS="${DLA_CONSUMER_LINKER_FLAGS:-}" > "$scratch/configure.log" || { cat "$scratch/configure.log"; exit 1; }
cmake --build "$scratch/build" > "$scratch/build.log" || { cat "$scratch/build.log"; exit 1; }
"$scratch/build/consumer"
"$scratch/prefix/bin/dla" --help > /dev/null
if [ "${3:-}" = with-python ]; then
  pydir=$(find "$scratch/prefix" -type d -name dlasim -path '*dist-packages*' | head -n 1)
  [ -n "$pydir" ] || { echo "no dlasim package under $scratch/prefix"; exit 1; }
  # Debian's python3 puts <prefix>/lib/python3.X/dist-packages on its path for /usr/local;
  # for a scratch prefix the test adds that folder, and only that folder.
  env -u DLASIM_QAT_LIBRARY PYTHONPATH="$(dirname "$pydir")" /usr/bin/python3 -c "
import dlasim, dlasim._library as l, torch
path = l.load_library()
assert path.startswith('$scratch/prefix'), path
print('python: dlasim from', dlasim.__file__, 'op library', path, 'hw_preset', list(torch.ops.dla.hw_preset('default')))
"
fi
if [ "${3:-}" = with-python ]; then
  # The pyproject installs offline with Debian's setuptools (from a copy: pip writes build
  # files beside the sources).
  cp -r "$src/qat_bridge/python" "$scratch/pysrc"
  /usr/bin/python3 -m pip install -q --no-build-isolation --no-deps --no-index --target "$scratch/site" \
    "$scratch/pysrc" 2>&1 | grep -v "Running pip as the 'root' user" || true
  [ -f "$scratch/site/dlasim/export.py" ] || { echo "pip did not install the dlasim package"; exit 1; }
  ls "$scratch"/site/dlasim-*.dist-info > /dev/null
fi
echo "install: ok"
