#!/bin/sh
# Run HERE after `sh bench/prepare-device.sh` (which builds build-device): adds the plugin test
# files to .device/plugin (example plugin, broken plugins, pre-written models). Then on the device:
#   sh tests/plugin/plugin_gpu_test.sh .device/bin/kiln .device/plugin/models \
#      .device/plugin/libkiln_scaled_tanh.so .device/plugin /tmp/plugin_gpu
set -eu
cd "$(dirname "$0")/../.."
cmake --build build-device -j2 --target kiln_scaled_tanh kiln_plugin_make_model kiln_bad_enqueue_only kiln_bad_execute_error >/dev/null
rm -rf .device/plugin && mkdir -p .device/plugin
cp build-device/examples/plugins/libkiln_scaled_tanh.so build-device/tests/bad_plugins/*.so .device/plugin/
build-device/tests/kiln_plugin_make_model .device/plugin/models
du -sh .device/plugin
