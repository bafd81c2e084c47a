#!/bin/sh
# The kiln command line as a user types it: run with --inputs and --input (.pb and .npy),
# --save-outputs, inspect on every SR fixture, usage errors, version.
#
# usage: cli_test.sh KILN_BINARY SHARED_DIR
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 KILN_BINARY SHARED_DIR" >&2
    exit 2
fi
KILN=$1
SR=$2/sr-fixtures
X2=$SR/srvgg_tiny_x2
[ -x "$KILN" ] || { echo "cli_test: '$KILN' is not an executable" >&2; exit 2; }
[ -f "$X2/model.onnx" ] || { echo "cli_test: no srvgg_tiny_x2 under '$SR'" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cli.XXXXXX") || exit 2
trap 'rm -rf "$T"' EXIT INT TERM

. "$(dirname "$0")/lib.sh"

# A successful command: exit 0, nothing on stderr, no sanitizer report.
expect_success() {
    if [ $rc -ne 0 ]; then bad "$1: exit $rc"; return 1; fi
    if ! sanitizer_clean; then bad "$1: sanitizer report"; return 1; fi
    if [ -s "$T/stderr" ]; then bad "$1: stderr not empty"; return 1; fi
    return 0
}

# A refused command: exit 1..127, exactly one stderr line starting 'kiln: ' that holds $2, empty stdout.
expect_refusal() {
    what=$1
    want=$2
    if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then bad "$what: exit $rc (want a plain failure)"; return; fi
    if ! sanitizer_clean; then bad "$what: sanitizer report"; return; fi
    lines=$(wc -l <"$T/stderr")
    first=$(head -n 1 "$T/stderr")
    case $first in
    'kiln: '*) ;;
    *) bad "$what: stderr does not start with 'kiln: '"; return ;;
    esac
    if [ "$lines" -ne 1 ]; then bad "$what: stderr has $lines lines, want one"; return; fi
    case $first in
    *"$want"*) ;;
    *) bad "$what: message lacks '$want'"; return ;;
    esac
    if [ -s "$T/stdout" ]; then bad "$what: stdout not empty"; return; fi
    ok "$what: $first"
}

u8() { od -An -tu1 -j"$2" -N1 "$1" | tr -d ' '; }

# Checks an .npy file: magic, version 1.0, 64-byte aligned header with descr/fortran_order/shape,
# and a size that is exactly header + elements * itemsize. $2 = descr, $3 = shape text, $4 = elements.
check_npy() {
    f=$1
    [ -f "$f" ] || { echo "no file '$f'"; return 1; }
    magic=$(od -An -tx1 -N8 "$f" | tr -d ' \n')
    [ "$magic" = 934e554d50590100 ] || { echo "bad magic/version '$magic'"; return 1; }
    hlen=$(( $(u8 "$f" 8) + 256 * $(u8 "$f" 9) ))
    start=$((10 + hlen))
    [ $((start % 64)) -eq 0 ] || { echo "data starts at $start, not 64-byte aligned"; return 1; }
    header=$(dd if="$f" bs=1 skip=10 count="$hlen" 2>/dev/null)
    last=$(od -An -tx1 -j$((start - 1)) -N1 "$f" | tr -d ' ')
    [ "$last" = 0a ] || { echo "header does not end with a newline"; return 1; }
    for part in "'descr': '$2'" "'fortran_order': False" "'shape': $3"; do
        case $header in *"$part"*) ;; *) echo "header '$header' lacks $part"; return 1 ;; esac
    done
    size=$(wc -c <"$f")
    isz=${2#?}
    isz=${isz#?}
    want=$((start + $4 * isz))
    [ "$size" -eq "$want" ] || { echo "file has $size bytes, header + data make $want"; return 1; }
    return 0
}

# ---------------------------------------------------------------- run
mkdir -p "$T/out1" "$T/out2" "$T/out3" "$T/out4"
k run "$X2/model.onnx" --inputs "$X2/test_data_set_0" --save-outputs "$T/out1"
if expect_success "run --inputs --save-outputs"; then
    if ! grep -q "^output 'output': float32\[1,3,48,64\]" "$T/stdout"; then
        bad "run --inputs: stdout lacks \"output 'output': float32[1,3,48,64]\""
    elif ! msg=$(check_npy "$T/out1/output_0.npy" '<f4' '(1, 3, 48, 64)' $((3 * 48 * 64))); then
        bad "run --save-outputs: output_0.npy: $msg"
    elif [ "$(ls -A "$T/out1")" != output_0.npy ]; then
        bad "run --save-outputs: extra files: $(ls -A "$T/out1" | tr '\n' ' ')"
    else
        ok "run --inputs --save-outputs: output_0.npy valid"
    fi
fi

k run "$X2/model.onnx" --input "input=$X2/test_data_set_0/input_0.pb" --save-outputs "$T/out2"
if expect_success "run --input NAME=FILE.pb"; then
    if cmp -s "$T/out1/output_0.npy" "$T/out2/output_0.npy"; then ok "run --input NAME=FILE.pb: same output as --inputs"
    else bad "run --input NAME=FILE.pb: output differs from the --inputs run"; fi
fi

# The same input as .npy: its raw_data is the .pb file's last field, 3*24*32 floats.
{
    hdr="{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 24, 32), }"
    printf '\223NUMPY\001\000'
    pad=$(((64 - (10 + ${#hdr} + 1) % 64) % 64))
    printf "\\$(printf %03o $((${#hdr} + pad + 1)))\\000"
    printf '%s' "$hdr"
    printf "%${pad}s\n" ""
    tail -c $((3 * 24 * 32 * 4)) "$X2/test_data_set_0/input_0.pb"
} >"$T/input.npy"
k run "$X2/model.onnx" --input "input=$T/input.npy" --save-outputs "$T/out3"
if expect_success "run --input NAME=FILE.npy"; then
    if cmp -s "$T/out1/output_0.npy" "$T/out3/output_0.npy"; then ok "run --input NAME=FILE.npy: same output as the .pb input"
    else bad "run --input NAME=FILE.npy: output differs from the .pb input's"; fi
fi

# A saved output is itself a valid .npy input (symbolic h, w): 48x64 -> 96x128.
k run "$X2/model.onnx" --input "input=$T/out1/output_0.npy" --save-outputs "$T/out4"
if expect_success "run on a saved output"; then
    if msg=$(check_npy "$T/out4/output_0.npy" '<f4' '(1, 3, 96, 128)' $((3 * 96 * 128))); then
        ok "run --input FILE.npy from --save-outputs: 1x3x96x128"
    else bad "run on a saved output: $msg"; fi
fi

k run "$X2/model.onnx" --inputs "$X2/test_data_set_0"
if expect_success "run without --save-outputs"; then
    if grep -q "^output 'output': float32\[1,3,48,64\]  min .* max .* mean " "$T/stdout"; then ok "run without --save-outputs prints a summary"
    else bad "run without --save-outputs: no summary line"; fi
fi

k run "$X2/model.onnx" --inputs "$X2/test_data_set_0" --backend cpu
expect_success "run --backend cpu" && ok "run --backend cpu"

# ---------------------------------------------------------------- inspect
# fixture | opset | input line | "hw" when the output must keep the symbolic h and w by name
for spec in \
    "srvgg_tiny_x2|17|  input: float32[1,3,h,w]|hw" \
    "srvgg_tiny_x4_dynamo|18|  input: float32[1,3,h,w]|hw" \
    "rrdb_tiny_x4|17|  input: float32[1,3,h,w]|hw" \
    "edvr_tiny|19|  input: float32[1,3,3,16,16]|" \
    "resize_opset11_unfolded|11|  input: float32[1,3,h,w]|hw"; do
    fx=${spec%%|*}; r=${spec#*|}
    opset=${r%%|*}; r=${r#*|}
    inline=${r%%|*}; strict=${r#*|}
    k inspect "$SR/$fx/model.onnx"
    expect_success "inspect $fx" || continue
    why=""
    grep -qx "opset: $opset" "$T/stdout" || why="no 'opset: $opset' line"
    grep -q '^nodes: [1-9]' "$T/stdout" || why="no node count"
    grep -qxF "$inline" "$T/stdout" || why="no line '$inline'"
    for section in inputs: outputs: ops:; do grep -qx "$section" "$T/stdout" || why="no '$section' section"; done
    grep -q '^  output: ' "$T/stdout" || why="output 'output' not listed"
    grep -q '^  Conv  *[1-9]' "$T/stdout" || why="Conv not in the op histogram"
    grep -q -e '^capability: ' -e '^cannot run on the cpu backend' "$T/stdout" || why="no capability report"
    grep -q '^shape inference' "$T/stdout" && why="shape inference failed: $(grep '^shape inference' "$T/stdout")"
    grep -q '^  output: ?' "$T/stdout" && why="output type unknown"
    if [ "$strict" = hw ]; then
        grep -q '^  output: float32\[[^]]*h[^]]*,[^]]*w[^]]*\]$' "$T/stdout" || why="output shape lacks h and w"
    fi
    if [ -n "$why" ]; then bad "inspect $fx: $why"; else ok "inspect $fx"; fi
done

# ---------------------------------------------------------------- version, help
k version
if expect_success "version"; then
    if grep -qx 'kiln [0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*' "$T/stdout" && [ "$(wc -l <"$T/stdout")" -eq 1 ]; then
        ok "version: $(cat "$T/stdout")"
    else bad "version: not one 'kiln X.Y.Z' line"; fi
fi
k --version
expect_success "--version" && { grep -qx 'kiln [0-9.]*' "$T/stdout" && ok "--version" || bad "--version: output"; }
k --help
expect_success "--help" && { grep -q 'run MODEL' "$T/stdout" && ok "--help lists the commands" || bad "--help: no usage"; }

# ---------------------------------------------------------------- usage errors
k
expect_refusal "no arguments" "kiln"
k frobnicate
expect_refusal "unknown command" "frobnicate"
k run "$X2/model.onnx" --inputs "$X2/test_data_set_0" --bogus-flag
expect_refusal "run: unknown flag" "--bogus-flag"
k inspect "$X2/model.onnx" --bogus-flag
expect_refusal "inspect: unknown flag" "usage"
k run
expect_refusal "run: no model" "no model"
k inspect
expect_refusal "inspect: no model" "usage"
k run "$X2/model.onnx" --inputs
expect_refusal "run: --inputs without a value" "--inputs"
k run "$X2/model.onnx" "$X2/model.onnx"
expect_refusal "run: two models" "one model"
k run "$X2/model.onnx" --inputs "$X2/test_data_set_0" --input "input=$T/input.npy"
expect_refusal "run: --inputs and --input together" "not both"
k run "$X2/model.onnx" --input "input"
expect_refusal "run: --input without '='" "NAME=FILE"
k run "$X2/model.onnx" --input "=$T/input.npy"
expect_refusal "run: --input with an empty name" "NAME=FILE"
k run "$X2/model.onnx" --inputs "$X2/test_data_set_0" --backend cuda-nope
expect_refusal "run: unknown backend" "cuda-nope"
k run "$X2/model.onnx" --inputs "$X2/test_data_set_0" --save-outputs "$T/no/such/dir"
expect_refusal "run: --save-outputs into a missing folder" "$T/no/such/dir"
: >"$T/plainfile"
k run "$X2/model.onnx" --inputs "$X2/test_data_set_0" --save-outputs "$T/plainfile"
expect_refusal "run: --save-outputs onto a file" "plainfile"
k run "$X2/model.onnx" --input "input=$T/input.npy" --input "input=$T/input.npy"
expect_refusal "run: the same input twice" "input"

# --- engine files on the CPU (issue 3, owner: wts): an engine of format 2 (weights not in
# run-time form) or of an unknown newer format is refused by inspect, naming both versions ---
printf 'KILNENG\000\002\000\000\000\000\000\000\000' >"$T/v2.kiln"
k inspect "$T/v2.kiln"
expect_refusal "inspect: engine of format 2" "format version 2; this kiln reads version 3"
printf 'KILNENG\000\011\000\000\000' >"$T/v9.kiln"
k inspect "$T/v9.kiln"
expect_refusal "inspect: engine of format 9" "format version 9; this kiln reads version 3"
printf 'KILNENG\000\003\000\000\000\010\000\000\000cc=9.0\n' >"$T/v3_cut.kiln"
k inspect "$T/v3_cut.kiln"
expect_refusal "inspect: engine of format 3 cut after its header" "damaged"
# --- end engine files ---

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
