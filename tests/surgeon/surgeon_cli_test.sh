#!/bin/sh
# kiln surgeon end to end on the CPU: sanitize (the resize_opset11_unfolded done-when), the
# edit subcommands, external data, --dump-graph-after, and bad inputs (one 'kiln: ' line,
# exit 1 or 2, no output file or temporary left behind).
#
# usage: surgeon_cli_test.sh KILN SHARED_DIR OUT_DIR ROUNDTRIP_TEST_BINARY
set -u
if [ $# -lt 4 ]; then
    echo "usage: $0 KILN SHARED_DIR OUT_DIR ROUNDTRIP_TEST_BINARY" >&2
    exit 2
fi
KILN=$1
SR=$2/sr-fixtures
OUT=$3
RT=$4
RESIZE=$SR/resize_opset11_unfolded
SRVGG=$SR/srvgg_tiny_x2
rm -rf "$OUT"
mkdir -p "$OUT"
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "PASS $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1: $2"; }

# run NAME CMD...: must succeed
run() {
    name=$1
    shift
    if "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; then ok "$name"; else bad "$name" "exit $? ($(head -n 1 "$OUT/$name.err"))"; fi
}

# refuse NAME EXPECTED_TEXT OUTPUT_FILE CMD...: must fail cleanly and leave no OUTPUT_FILE (nor temporaries)
refuse() {
    name=$1
    expect=$2
    target=$3
    shift 3
    "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    rc=$?
    lines=$(wc -l <"$OUT/$name.err")
    first=$(head -n 1 "$OUT/$name.err")
    dir=$(dirname "$target")
    if [ $rc -eq 0 ]; then bad "$name" "exit status 0"
    elif [ $rc -ge 3 ]; then bad "$name" "exit status $rc (crash?)"
    elif grep -q -e Sanitizer -e 'runtime error' "$OUT/$name.err"; then bad "$name" "sanitizer report"
    elif [ "$lines" -ne 1 ]; then bad "$name" "$lines stderr lines"
    else
        case $first in
        "kiln: "*"$expect"*)
            if [ -e "$target" ]; then bad "$name" "output '$target' left behind"
            elif [ -d "$dir" ] && ls "$dir" | grep -q '\.tmp'; then bad "$name" "temporary file left in $dir"
            else ok "$name"; fi ;;
        *) bad "$name" "stderr '$first' lacks '$expect'" ;;
        esac
    fi
}

# --- sanitize: the done-when of issue 5
run sanitize_fold "$KILN" surgeon sanitize "$RESIZE/model.onnx" -o "$OUT/resize_folded.onnx" --fold-constants
grep -q 'folded 4 nodes' "$OUT/sanitize_fold.out" && grep -q 'Constant 3' "$OUT/sanitize_fold.out" &&
    grep -q 'nodes: 7 before, 3 after' "$OUT/sanitize_fold.out" && ok sanitize_summary ||
    bad sanitize_summary "$(cat "$OUT/sanitize_fold.out")"
run resize_scales_initializer "$RT" --resize-scales-initializer "$OUT/resize_folded.onnx"
mkdir -p "$OUT/fx_folded" "$OUT/fx_folded_rt" "$OUT/fx_srvgg_rt"
cp "$OUT/resize_folded.onnx" "$OUT/fx_folded/model.onnx"
ln -s "$RESIZE/test_data_set_0" "$OUT/fx_folded/test_data_set_0"
run folded_vs_stored_output "$RT" --fixture "$OUT/fx_folded" "$OUT/fx_folded_rt"
mkdir -p "$OUT/run_orig" "$OUT/run_folded" "$OUT/fx_folded_rt"
run kiln_run_original "$KILN" run "$RESIZE/model.onnx" --inputs "$RESIZE/test_data_set_0" --save-outputs "$OUT/run_orig"
run kiln_run_folded "$KILN" run "$OUT/resize_folded.onnx" --inputs "$RESIZE/test_data_set_0" --save-outputs "$OUT/run_folded"
for f in "$OUT"/run_orig/*; do
    if cmp -s "$f" "$OUT/run_folded/$(basename "$f")"; then ok "kiln_run_same_$(basename "$f")"
    else bad "kiln_run_same_$(basename "$f")" "outputs differ"; fi
done

run sanitize_all "$KILN" surgeon sanitize "$SRVGG/model.onnx" -o "$OUT/srvgg_clean.onnx" --fold-constants --cleanup \
    --toposort --num-passes=3 --override-input-shapes=input:1x3x24x32
"$KILN" inspect "$OUT/srvgg_clean.onnx" >"$OUT/srvgg_clean.inspect" 2>&1
grep -q 'input: float32\[1,3,24,32\]' "$OUT/srvgg_clean.inspect" && ok override_shape ||
    bad override_shape "$(grep -A1 inputs "$OUT/srvgg_clean.inspect")"
mkdir -p "$OUT/fx_srvgg"
cp "$OUT/srvgg_clean.onnx" "$OUT/fx_srvgg/model.onnx"
ln -s "$SRVGG/test_data_set_0" "$OUT/fx_srvgg/test_data_set_0"
run sanitized_srvgg_vs_stored "$RT" --fixture "$OUT/fx_srvgg" "$OUT/fx_srvgg_rt"

# --- external data
mkdir -p "$OUT/ext" "$OUT/ext_rt"
run external_data "$KILN" surgeon sanitize "$SRVGG/model.onnx" -o "$OUT/ext/model.onnx" --external-data=256
[ -s "$OUT/ext/model.onnx.data" ] && ok external_file || bad external_file "no model.onnx.data"
ln -s "$SRVGG/test_data_set_0" "$OUT/ext/test_data_set_0"
run external_vs_stored "$RT" --fixture "$OUT/ext" "$OUT/ext_rt"

# --- edits
run replace_op "$KILN" surgeon replace-op "$RESIZE/model.onnx" -o "$OUT/replaced.onnx" --op=Relu --with=MyRelu \
    --domain=my.plugins --attr=alpha=0.5
"$KILN" inspect "$OUT/replaced.onnx" >"$OUT/replaced.inspect" 2>&1
grep -q 'my.plugins::MyRelu\|MyRelu' "$OUT/replaced.inspect" && ok replace_op_written || bad replace_op_written "no MyRelu"
run set_attr "$KILN" surgeon set-attr "$RESIZE/model.onnx" -o "$OUT/set_attr.onnx" --node=/Resize --attr=mode=nearest \
    --attr=cubic_coeff_a:float=-0.5
run rename "$KILN" surgeon rename "$RESIZE/model.onnx" -o "$OUT/renamed.onnx" --tensor=output=out_image
"$KILN" inspect "$OUT/renamed.onnx" 2>&1 | grep -q 'out_image' && ok rename_written || bad rename_written "no out_image"
run extract "$KILN" surgeon extract "$SRVGG/model.onnx" -o "$OUT/extracted.onnx" --inputs=input \
    --outputs=/body/body.1/PRelu_output_0
run remove_node "$KILN" surgeon remove-node "$RESIZE/model.onnx" -o "$OUT/removed.onnx" --node=/Relu
"$KILN" inspect "$OUT/removed.onnx" >"$OUT/removed.inspect" 2>&1
grep -q 'Relu' "$OUT/removed.inspect" && bad remove_node_written "Relu still there" || ok remove_node_written

# --- --dump-graph-after (CPU only: no --saveEngine)
run dump_all "$KILN" build "$SRVGG/model.onnx" --shapes=input:1x3x16x16 --dump-graph-after=all --dump-dir="$OUT/dumps"
[ -s "$OUT/dumps/fuse_conv_activation.onnx" ] && ok dump_files || bad dump_files "no fuse_conv_activation.onnx"
run dump_readable "$KILN" inspect "$OUT/dumps/fuse_conv_activation.onnx"
grep -q FusedConv "$OUT/dump_readable.out" && ok dump_fused || bad dump_fused "no FusedConv in the dump"

# --- bad input
refuse unknown_node "no node named 'nope'" "$OUT/b1.onnx" "$KILN" surgeon remove-node "$RESIZE/model.onnx" -o "$OUT/b1.onnx" --node=nope
refuse unknown_node_attr "no node named 'nope'" "$OUT/b2.onnx" "$KILN" surgeon set-attr "$RESIZE/model.onnx" -o "$OUT/b2.onnx" --node=nope --attr=a=1
refuse unknown_op "no node of op type 'Nope'" "$OUT/b3.onnx" "$KILN" surgeon replace-op "$RESIZE/model.onnx" -o "$OUT/b3.onnx" --op=Nope --with=X
refuse unknown_tensor "nope" "$OUT/b4.onnx" "$KILN" surgeon rename "$RESIZE/model.onnx" -o "$OUT/b4.onnx" --tensor=nope=x
refuse rename_taken "input" "$OUT/b5.onnx" "$KILN" surgeon rename "$RESIZE/model.onnx" -o "$OUT/b5.onnx" --tensor=output=input
refuse remove_two_inputs "2 data inputs" "$OUT/b6.onnx" "$KILN" surgeon remove-node "$RESIZE/model.onnx" -o "$OUT/b6.onnx" --node=/Resize
refuse extract_dangling "extract" "$OUT/b7.onnx" "$KILN" surgeon extract "$SRVGG/model.onnx" -o "$OUT/b7.onnx" --inputs=/body/body.1/PRelu_output_0 --outputs=output
refuse extract_unknown "nope" "$OUT/b8.onnx" "$KILN" surgeon extract "$SRVGG/model.onnx" -o "$OUT/b8.onnx" --inputs=input --outputs=nope
refuse unwritable_dir "cannot write" "$OUT/no/such/dir/x.onnx" "$KILN" surgeon sanitize "$RESIZE/model.onnx" -o "$OUT/no/such/dir/x.onnx"
mkdir -p "$OUT/isdir.onnx"
refuse output_is_dir "cannot write" "$OUT/isdir.onnx/x" "$KILN" surgeon sanitize "$RESIZE/model.onnx" -o "$OUT/isdir.onnx"
refuse bad_model "not a valid ONNX model" "$OUT/b9.onnx" "$KILN" surgeon sanitize "$RESIZE/test_data_set_0/input_0.pb" -o "$OUT/b9.onnx"
refuse bad_shape "override-input-shapes" "$OUT/b10.onnx" "$KILN" surgeon sanitize "$RESIZE/model.onnx" -o "$OUT/b10.onnx" --override-input-shapes=nope:1x3
refuse bad_attr "not a valid int" "$OUT/b11.onnx" "$KILN" surgeon set-attr "$RESIZE/model.onnx" -o "$OUT/b11.onnx" --node=/Resize --attr=x:int=abc
refuse schema_rejects "Resize" "$OUT/b12.onnx" "$KILN" surgeon set-attr "$RESIZE/model.onnx" -o "$OUT/b12.onnx" --node=/Resize --attr=mode=bogus
refuse no_output "no output given" "$OUT/b13.onnx" "$KILN" surgeon sanitize "$RESIZE/model.onnx"
refuse unknown_sub "unknown subcommand" "$OUT/b14.onnx" "$KILN" surgeon frobnicate
refuse dump_bad_pass "unknown pass" "$OUT/dumps2/x.onnx" "$KILN" build "$SRVGG/model.onnx" --dump-graph-after=nope
if [ -w /proc/self ] && [ "$(id -u)" != 0 ]; then
    refuse unwritable_proc "cannot write" "/proc/kiln_x.onnx" "$KILN" surgeon sanitize "$RESIZE/model.onnx" -o /proc/kiln_x.onnx
fi

echo "surgeon CLI: $pass passed, $fail failed"
[ $fail -eq 0 ]
