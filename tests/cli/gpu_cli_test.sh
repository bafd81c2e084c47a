#!/bin/sh
# The GPU commands as a user types them: kiln build / exec / compare on the srvgg_tiny_x2
# fixture (fp32, tf32, fp16; static and dynamic shapes; saved and loaded engines), and
# their refusals: a shape outside the profile, an unknown input name, a damaged engine.
#
# usage: gpu_cli_test.sh KILN_BINARY SHARED_DIR
# Exit 77 (CTest: skipped) when no CUDA device can be used; 0 when every check passes.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 KILN_BINARY SHARED_DIR" >&2
    exit 2
fi
KILN=$1
X2=$2/sr-fixtures/srvgg_tiny_x2
M=$X2/model.onnx
DATA=$X2/test_data_set_0
[ -x "$KILN" ] || { echo "gpu_cli_test: '$KILN' is not an executable" >&2; exit 2; }
[ -f "$M" ] || { echo "gpu_cli_test: no srvgg_tiny_x2 under '$2/sr-fixtures'" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/kiln-gpu-cli.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT INT TERM

K_TIMEOUT=600
. "$(dirname "$0")/lib.sh"

# exit 0, empty stderr, stdout holding every further argument (fixed strings).
expect_success() {
    what=$1
    shift
    if [ $rc -ne 0 ]; then bad "$what: exit $rc"; return 1; fi
    if ! sanitizer_clean; then bad "$what: sanitizer report"; return 1; fi
    if [ -s "$T/stderr" ]; then bad "$what: stderr not empty"; return 1; fi
    for want in "$@"; do
        if ! grep -qF -- "$want" "$T/stdout"; then bad "$what: stdout lacks '$want'"; return 1; fi
    done
    ok "$what"
    return 0
}

# exit 1..123, one stderr line 'kiln: ...' holding every further argument.
expect_refusal() {
    what=$1
    shift
    if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then bad "$what: exit $rc (want a plain failure)"; return 1; fi
    if ! sanitizer_clean; then bad "$what: sanitizer report"; return 1; fi
    if [ "$(wc -l <"$T/stderr")" -ne 1 ]; then bad "$what: want exactly one stderr line"; return 1; fi
    case $(head -n 1 "$T/stderr") in
    'kiln: '*) ;;
    *) bad "$what: stderr does not start with 'kiln: '"; return 1 ;;
    esac
    for want in "$@"; do
        if ! grep -qF -- "$want" "$T/stderr"; then bad "$what: stderr lacks '$want'"; return 1; fi
    done
    ok "$what"
    return 0
}

# Polygraphy-style comparison that failed on purpose: exit 1, a FAILED line, no stderr.
expect_mismatch() {
    what=$1
    if [ $rc -ne 1 ]; then bad "$what: exit $rc (want 1)"; return 1; fi
    if ! sanitizer_clean; then bad "$what: sanitizer report"; return 1; fi
    if [ -s "$T/stderr" ]; then bad "$what: stderr not empty"; return 1; fi
    if ! grep -q 'FAILED' "$T/stdout"; then bad "$what: no FAILED line"; return 1; fi
    ok "$what"
}

json_ok() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert isinstance(d, list) and len(d) > 0' "$1" 2>/dev/null
    else
        head -c 1 "$1" | grep -q '\['
    fi
}

# kiln exec with short timing: the fixture is tiny; the summary needs a handful of iterations only.
kx() {
    k exec "$@" --iterations=20 --duration=0 --warmUp=20
}

# check WHAT COMMAND...: PASS when the command succeeds.
check() {
    what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# --- no GPU: skipped -----------------------------------------------------------------
k build "$M" --saveEngine="$T/static_fp32.kiln" --noTF32 --shapes=input:1x3x32x32
if [ $rc -ne 0 ] && grep -q '^kiln: no CUDA device: ' "$T/stderr"; then
    echo "SKIPPED: $(head -n 1 "$T/stderr")"
    exit 77
fi

# --- build -------------------------------------------------------------------------------
expect_success "build fp32 static" "Engine built" "fp32"
check "build fp32: engine file written" test -s "$T/static_fp32.kiln"

k build "$M" --saveEngine="$T/static_fp16.kiln" --fp16 --shapes=input:1x3x32x32 --verbose
expect_success "build fp16 --verbose prints the engine" "precision: fp16" "layers ("
# the first layer name of the optimized network, for --layerPrecisions
LAYER=$(awk '/^layers \(/ { getline; print $1; exit }' "$T/stdout")

k build "$M" --saveEngine="$T/dyn_tf32.kiln" --minShapes=input:1x3x16x16 --optShapes=input:1x3x32x32 \
    --maxShapes=input:1x3x64x64 --timingCacheFile="$T/timing.cache"
expect_success "build tf32 dynamic min/opt/max with a timing cache" "Engine built"
check "timing cache written" test -s "$T/timing.cache"
k build "$M" --saveEngine="$T/dyn_tf32_again.kiln" --minShapes=input:1x3x16x16 --optShapes=input:1x3x32x32 \
    --maxShapes=input:1x3x64x64 --timingCacheFile="$T/timing.cache"
expect_success "rebuild with the timing cache" "Engine built"

k build "$M" --saveEngine="$T/dyn_fp16.kiln" --fp16 --minShapes=input:1x3x16x16 --optShapes=input:1x3x32x32 \
    --maxShapes=input:1x3x64x64
expect_success "build fp16 dynamic" "Engine built"

if [ -n "$LAYER" ]; then
    k build "$M" --saveEngine="$T/pinned.kiln" --fp16 --shapes=input:1x3x32x32 --layerPrecisions="$LAYER:fp32" --verbose
    expect_success "build fp16 with --layerPrecisions=$LAYER:fp32" "Engine built"
else
    bad "no layer name found in build --verbose output"
fi
k build "$M" --saveEngine="$T/x.kiln" --fp16 --shapes=input:1x3x32x32 --layerPrecisions=no_such_layer:fp32
expect_refusal "build: --layerPrecisions names no layer" "no_such_layer"

k build "$M" --saveEngine="$T/x.kiln" --shapes=image:1x3x32x32
expect_refusal "build: unknown input name in --shapes" "'image'" "'input'"
k build "$M" --saveEngine="$T/x.kiln" --minShapes=input:1x3x16x16 --optShapes=input:1x3x32x32 --maxShapes=img:1x3x64x64
expect_refusal "build: unknown input name in --maxShapes" "'img'" "'input'"
k build "$M" --saveEngine="$T/x.kiln"
expect_refusal "build: dynamic input without shapes" "dynamic" "--shapes=input:"
k build "$M" --saveEngine="$T/x.kiln" --minShapes=input:1x3x64x64 --optShapes=input:1x3x32x32 --maxShapes=input:1x3x64x64
expect_refusal "build: min > opt" "min <= opt <= max"
k build "$M" --saveEngine="$T/x.kiln" --shapes=input:1x3x32
expect_refusal "build: wrong rank" "3 dimensions"
k build "$M" --saveEngine="$T/x.kiln" --shapes=input:1x3x32x3z
expect_refusal "build: malformed dims" "--shapes"
k build "$M" --saveEngine="$T/x.kiln" --shapes=input:1x3x32x32 --fp8
expect_refusal "build: unknown flag" "--fp8"

# --- exec ------------------------------------------------------------------------------------
kx --loadEngine="$T/static_fp32.kiln"
expect_success "exec --loadEngine (fp32 static)" "=== Performance summary ===" "Throughput:" "Latency: min = " \
    "Enqueue Time: " "H2D Latency: " "GPU Compute Time: " "D2H Latency: " "percentile(99%)" "megapixels/s"

kx --onnx="$M" --fp16 --shapes=input:1x3x32x32 --saveEngine="$T/exec_saved.kiln"
expect_success "exec --onnx --fp16 --saveEngine" "=== Performance summary ===" "Engine built"
kx --loadEngine="$T/exec_saved.kiln"
expect_success "exec --loadEngine of the engine exec saved" "=== Performance summary ==="

kx --loadEngine="$T/dyn_tf32.kiln" --shapes=input:1x3x48x40
expect_success "exec dynamic engine at 48x40" "Input 'input': float32 1x3x48x40" "Output 'output': float32 1x3x96x80"
kx --loadEngine="$T/dyn_fp16.kiln" --shapes=input:1x3x16x64 --noDataTransfers
expect_success "exec dynamic fp16 at the range corners, --noDataTransfers" "=== Performance summary ==="
kx --loadEngine="$T/dyn_tf32.kiln"
expect_success "exec dynamic engine at its opt shape" "1x3x32x32"
EXP=$2/onnx-tests/node/test_exp/model.onnx
if [ -f "$EXP" ]; then
    k build "$EXP" --fp16 --saveEngine="$T/exp_fp16.kiln"
    expect_success "build --fp16 keeps Exp in fp32 for range, with a warning" "[W] layer" "(Exp) runs in fp32"
    k inspect "$T/exp_fp16.kiln"
    expect_success "inspect shows the Exp layer in fp32" "Exp" "fp32"
    k build "$EXP" --fp16 --layerPrecisions=Exp_0:fp16 --saveEngine="$T/exp_fp16b.kiln"
    if [ $rc -eq 0 ] && ! grep -q "runs in fp32" "$T/stdout"; then ok "build --layerPrecisions overrides the fp32 fallback"
    else bad "build --layerPrecisions overrides the fp32 fallback (rc $rc)"; fi
fi
kx --loadEngine="$T/dyn_fp16.kiln" --shapes=input:1x3x40x24 --noCudaGraph --iterations=20 --duration=0
expect_success "exec --noCudaGraph" "=== Performance summary ===" "GPU Compute Time: "

kx --loadEngine="$T/dyn_tf32.kiln" --shapes=input:1x3x128x128
expect_refusal "exec: shape outside the profile" "outside" "input"
kx --loadEngine="$T/dyn_tf32.kiln" --shapes=input:1x3x8x8
expect_refusal "exec: shape below the profile" "outside"
kx --loadEngine="$T/dyn_tf32.kiln" --shapes=image:1x3x32x32
expect_refusal "exec: unknown input name with --loadEngine" "'image'" "'input'"
kx --onnx="$M" --minShapes=input:1x3x16x16 --optShapes=input:1x3x32x32 --maxShapes=input:1x3x64x64 \
    --shapes=input:1x3x96x96
expect_refusal "exec --onnx: --shapes outside min/max" "outside the range"

kx --onnx="$M" --loadInputs="$DATA" --exportTimes="$T/times.json" --dumpProfile --exportProfile="$T/profile.json"
expect_success "exec with loaded inputs, --dumpProfile, --exportTimes, --exportProfile" "(loaded)" "=== Profile"
check "exportTimes is a JSON list" json_ok "$T/times.json"
check "exportProfile is a JSON list" json_ok "$T/profile.json"
k exec --onnx="$M" --loadInputs=input:"$DATA/input_0.pb" --noTF32 --iterations=5 --duration=0.2 --warmUp=0
expect_success "exec --loadInputs=name:file --duration" "Timing: "

# damaged engines: flipped bytes, truncated, not an engine
cp "$T/static_fp32.kiln" "$T/flipped.kiln"
size=$(wc -c <"$T/flipped.kiln")
printf '\377\377\377\377\377\377\377\377' | dd of="$T/flipped.kiln" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
kx --loadEngine="$T/flipped.kiln"
expect_refusal "exec: engine with flipped bytes" "damaged"
head -c $((size / 3)) "$T/static_fp32.kiln" >"$T/truncated.kiln"
kx --loadEngine="$T/truncated.kiln"
if expect_refusal "exec: truncated engine" "truncated.kiln"; then
    check "truncated engine: the message says damaged or truncated" grep -q -e 'damaged' -e 'truncated' "$T/stderr"
fi
cp "$M" "$T/model_as_engine.kiln"
kx --loadEngine="$T/model_as_engine.kiln"
expect_refusal "exec: an ONNX file given as engine" "not a kiln engine"
kx --loadEngine="$T/missing.kiln"
expect_refusal "exec: missing engine file" "missing.kiln"
k compare "$M" --engine="$T/flipped.kiln"
expect_refusal "compare: damaged engine" "damaged"
# --- engine format 3: weights in run-time form (issue 3; owner: wts) ---
kx --loadEngine="$T/static_fp16.kiln"
expect_success "exec --loadEngine prints the load and context times" "Engine loaded from" " ms" "Context created"
k inspect "$T/static_fp16.kiln"
expect_success "inspect: weights stored in run-time form" "run-time forms" "constants only in run-time form"
cp "$T/static_fp16.kiln" "$T/v2.kiln"
printf '\002' | dd of="$T/v2.kiln" bs=1 seek=8 conv=notrunc 2>/dev/null
kx --loadEngine="$T/v2.kiln"
expect_refusal "exec: an engine of format 2 (weights not in run-time form)" "format version 2; this kiln reads version 3"
size16=$(wc -c <"$T/static_fp16.kiln")
cp "$T/static_fp16.kiln" "$T/blob.kiln"
printf '\125\252\125\252\125\252\125\252' | dd of="$T/blob.kiln" bs=1 seek=$((size16 - 200)) conv=notrunc 2>/dev/null
kx --loadEngine="$T/blob.kiln"
expect_refusal "exec: damaged weight blob" "checksum mismatch"
head -c $((size16 - 100)) "$T/static_fp16.kiln" >"$T/blob_cut.kiln"
kx --loadEngine="$T/blob_cut.kiln"
expect_refusal "exec: engine cut inside the weight blob" "damaged"
# --- end engine format 3 ---

# --- compare ------------------------------------------------------------------------------
k compare "$M" --noTF32 --shapes=input:1x3x32x32 --check-error-stat=mean --atol=1e-5 --rtol=1e-5
expect_success "compare fp32 vs CPU: mean error within 1e-5" "PASSED" "absolute error: mean = " \
    "relative error: mean = " "mean relative error sum|a-b|/sum|b|" "PSNR" "NaN/Inf: engine 0/0"
k compare "$M" --noTF32 --loadInputs="$DATA" --atol=1e-4 --rtol=1e-3
expect_success "compare fp32 elementwise on the fixture input" "PASSED"
k compare "$M" --noTF32 --loadInputs="$DATA" --loadRefOutputs="$DATA" --atol=1e-4 --rtol=1e-3
expect_success "compare fp32 against PyTorch's outputs (--loadRefOutputs)" "PASSED" "reference outputs from"
k compare "$M" --shapes=input:1x3x32x32 --check-error-stat=mean --atol=2e-3 --rtol=2e-3
expect_success "compare tf32 (default precision)" "PASSED"
k compare "$M" --fp16 --loadInputs="$DATA" --check-error-stat=mean --atol=1e-2 --rtol=1e-2
expect_success "compare fp16 mean error" "PASSED" "PSNR"
k compare "$M" --engine="$T/dyn_fp16.kiln" --shapes=input:1x3x24x40 --check-error-stat=mean --atol=1e-2 --rtol=1e-2
expect_success "compare a saved dynamic fp16 engine at 24x40" "PASSED" "1x3x48x80"
k compare "$M" --fp16 --shapes=input:1x3x32x32 --atol=0 --rtol=0
expect_mismatch "compare fp16 with zero tolerance fails (exit 1)"
k compare "$M" --fp16 --shapes=input:1x3x32x32 --atol=output:1e-2 --rtol=1e-2 --check-error-stat=output:max --mark-all
if [ $rc -le 1 ] && sanitizer_clean && grep -q -e '--mark-all: first tensor over tolerance' -e '--mark-all: all ' \
    -e '--mark-all: not supported' "$T/stdout"; then ok "compare --mark-all reports"; else bad "compare --mark-all: exit $rc"; fi
k compare "$M" --engine="$T/dyn_tf32.kiln" --shapes=input:1x3x99x99
expect_refusal "compare: shape outside the saved engine's profile" "outside"
k compare "$M" --shapes=input:1x3x32x32 --atol=nope:1e-3
expect_refusal "compare: tolerance for an unknown output" "'nope'" "'output'"

echo "gpu_cli_test: $pass passed, $fail failed"
[ $fail -eq 0 ]
