#!/bin/sh
# Runs ON THE GPU MACHINE: the activation-memory plan of a few models (kiln exec prints the arena
# against the lower bound: the largest sum of tensors alive at one step).
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
S=.device/shared
for m in sr-fixtures/rrdb_tiny_x4 sr-fixtures/srvgg_tiny_x2; do
    for p in "" "--fp16"; do
        echo "== $m $p"
        .device/bin/kiln exec --onnx=$S/$m/model.onnx $p --iterations=20 --duration=0 --warmUp=50 \
            --shapes=input:1x3x270x480 2>&1 | grep -E "Activation memory|GPU Compute Time|kiln:" | head -3
    done
done
for m in resnet50 densenet121; do
    echo "== light $m"
    .device/bin/kiln exec --onnx=$S/onnx-tests/light/light_$m.onnx --iterations=20 --duration=0 --warmUp=50 2>&1 \
        | grep -E "Activation memory|GPU Compute Time|kiln:" | head -3
done
