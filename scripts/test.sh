#!/bin/sh
# Builds kiln twice (optimized, and with AddressSanitizer + UndefinedBehaviorSanitizer) and runs
# every test under CTest in both, then a short fuzzing run of the ONNX loader.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
JOBS="$(nproc)"
SHARED="${KILN_SHARED_DIR:-$(pwd)/../shared}"

echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKILN_WERROR=ON -DKILN_SHARED_DIR="$SHARED" >/dev/null
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j"$JOBS")

echo "== sanitizer build (ASan + UBSan)"
# the CUDA backend is built and linked in the release build above; here the host code is what matters
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON -DKILN_CUDA=OFF -DKILN_WERROR=ON -DKILN_SHARED_DIR="$SHARED" >/dev/null
cmake --build build-asan -j"$JOBS"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$JOBS" -LE slow)

echo "== fuzzing the ONNX loader and the tensor readers (libFuzzer, ASan + UBSan), 60 s each"
CC=clang cmake -S . -B build-fuzz -DKILN_FUZZ=ON -DKILN_CUDA=OFF -DKILN_WERROR=ON -DKILN_SHARED_DIR="$SHARED" >/dev/null
cmake --build build-fuzz -j"$JOBS" --target fuzz_onnx_load fuzz_tensor_read >/dev/null
mkdir -p build-fuzz/corpus-onnx build-fuzz/corpus-tensor
build-fuzz/tests/fuzz/fuzz_onnx_load -max_total_time=60 -print_final_stats=0 build-fuzz/corpus-onnx build-fuzz/tests/fuzz/seeds 2>&1 | tail -2
build-fuzz/tests/fuzz/fuzz_tensor_read -max_total_time=60 -print_final_stats=0 build-fuzz/corpus-tensor build-fuzz/tests/fuzz/seeds_tensor 2>&1 | tail -2
echo "fuzzing: no crash"
