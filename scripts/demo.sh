#!/bin/sh
# The main job on an embedded default: build kiln, build a small SR network by hand with the
# network API, run it on a generated image, write input and output images to ./demo-out.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p demo-out
./build/example_tiny_sr demo-out 96 128
