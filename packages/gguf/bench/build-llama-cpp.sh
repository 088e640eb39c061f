#!/usr/bin/env bash
# Builds llama.cpp natively (-DGGML_NATIVE=ON, Release) from the source node-llama-cpp ships as a git bundle, so the
# decode benchmark (decode.ts) can run it beside our engines as issue 16's "native llama.cpp" yardstick.
# Not run by CI. Only the llama-bench target is built (the decode bench runs `llama-bench -p 0 -d 32 -n 64`).
#
#   packages/gguf/bench/build-llama-cpp.sh            # build into $LLAMA_CPP_DIR (default /tmp/neuroshard-llama-cpp)
#   JOBS=2 NICE=10 packages/gguf/bench/build-llama-cpp.sh
#
# Prints the path of llama-bench on its last line. The decode bench finds it at
# $LLAMA_CPP_DIR/build/bin/llama-bench (or takes LLAMA_BENCH=<path>). The build takes long on a 2-core machine
# (~10-20 min): on a shared machine prefix it with /tmp/briefs/wait-quiet if that exists.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
dir="${LLAMA_CPP_DIR:-/tmp/neuroshard-llama-cpp}"
jobs="${JOBS:-2}"
nice="${NICE:-10}"
bundle="$(ls -d "$root"/node_modules/.pnpm/node-llama-cpp@*/node_modules/node-llama-cpp/llama/gitRelease.bundle 2>/dev/null | head -n 1 || true)"
if [ -z "$bundle" ]; then echo "no node-llama-cpp gitRelease.bundle under $root/node_modules/.pnpm (run pnpm install)" >&2; exit 1; fi
info="$(dirname "$bundle")/llama.cpp.info.json"
mkdir -p "$dir"
if [ ! -d "$dir/src/.git" ]; then
  git clone --quiet "$bundle" "$dir/src"
fi
echo "llama.cpp source: $bundle ($(cat "$info" 2>/dev/null | tr -d '\n ' || true)), commit $(git -C "$dir/src" rev-parse --short HEAD)"
nice -n "$nice" cmake -S "$dir/src" -B "$dir/build" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF > "$dir/cmake.log"
nice -n "$nice" cmake --build "$dir/build" --config Release --target llama-bench -j "$jobs"
echo "$dir/build/bin/llama-bench"
