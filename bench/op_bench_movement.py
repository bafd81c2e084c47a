"""Single-op timings of the movement kernels (src/cuda/k_movement.cu) at EDVR-M shapes (runs ON THE
GPU MACHINE). EDVR-M at 1x5x3x180x320: 64 features at 180x320, 90x160 and 45x80, five frames, the
DCN offset conv's 216 channels, two PixelShuffle x2 up to 720x1280. fp16 (NHWC engines), plus one
fp32 Concat.

Built on bench/op_bench.py (helper memk's harness: one-node ONNX models through `kiln exec
--dumpProfile`, the op layer's median). Each case runs twice: with KILN_MOVE_GENERIC=1 (the general
strided copy only = the kernels before the fast paths; tag 'generic') and normally (tag 'fast').
KILN_NO_VIEW_ALIAS=1 is set so that Reshape/Gather/Unsqueeze run as kernels instead of becoming
views (the kernels still run wherever the runtime cannot alias).

Usage (repo root on the device):
    export LD_LIBRARY_PATH=$PWD/.device/bin
    python3 bench/op_bench_movement.py [--kiln .device/bin/kiln] [--filter S] [--keep DIR] [--no-baseline]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import op_bench  # noqa: E402
from op_bench import make_case  # noqa: E402

I64 = "INT64"


def cases():
    C = []
    # Concat along C in NHWC: PCD's cat([nbr, ref]) / cat([feat, upsampled]) at the three levels
    for h, w in ((180, 320), (90, 160), (45, 80)):
        sh = [1, 64, h, w]
        C.append(make_case(f"concat_c_64+64_{h}x{w}", "Concat", [("a", sh), ("b", sh)], [("y", [1, 128, h, w])],
                           attrs={"axis": 1}))
    # the DCN offsets + mask: cat((o1, o2), dim=1), 72 + 72 channels
    sh = [1, 72, 180, 320]
    C.append(make_case("concat_c_72+72_180x320", "Concat", [("a", sh), ("b", sh)], [("y", [1, 144, 180, 320])],
                       attrs={"axis": 1}))
    sh = [1, 64, 180, 320]
    C.append(make_case("concat_c_64+64_180x320", "Concat", [("a", sh), ("b", sh)], [("y", [1, 128, 180, 320])],
                       attrs={"axis": 1}, fp16=False))
    # torch.stack of five aligned frames: Concat of 5 x [1,1,64,H,W] on axis 1 (the runtime may do it in place)
    sh5 = [1, 1, 64, 180, 320]
    C.append(make_case("concat_5d_frames_5x64_180x320", "Concat", [(f"f{i}", sh5) for i in range(5)],
                       [("y", [1, 5, 64, 180, 320])], attrs={"axis": 1}))
    # Split of the DCN offset conv output: 216 -> 72 + 72 + 72
    for h, w in ((180, 320), (45, 80)):
        C.append(make_case(f"split_c_216_3x72_{h}x{w}", "Split", [("x", [1, 216, h, w])],
                           [(f"y{i}", [1, 72, h, w]) for i in range(3)], attrs={"axis": 1},
                           consts=[("split", I64, [3], [72, 72, 72])]))
    # What split_to_slice makes of Split + Concat (batch 5 after batch_branches): two channel Slices
    for lo, hi in ((0, 144), (144, 216)):
        C.append(make_case(f"slice_c_216_{lo}-{hi}_5x180x320", "Slice", [("x", [5, 216, 180, 320])],
                           [("y", [5, hi - lo, 180, 320])],
                           consts=[("starts", I64, [1], [lo]), ("ends", I64, [1], [hi]), ("axes", I64, [1], [1])],
                           moved_elems=2 * 5 * (hi - lo) * 180 * 320))
    # Reshape 4-D NHWC <-> 5-D row-major (feat.view(b, t, c, h, w) and back), TSA's view(b, -1, h, w)
    C.append(make_case("reshape_4d_to_5d_5x64_180x320", "Reshape", [("x", [5, 64, 180, 320])],
                       [("y", [1, 5, 64, 180, 320])], consts=[("shape", I64, [5], [1, 5, 64, 180, 320])]))
    C.append(make_case("reshape_5d_to_4d_5x64_180x320", "Reshape", [("x", [1, 5, 64, 180, 320])],
                       [("y", [5, 64, 180, 320])], consts=[("shape", I64, [4], [5, 64, 180, 320])]))
    C.append(make_case("reshape_5d_to_1x320_180x320", "Reshape", [("x", [1, 5, 64, 180, 320])],
                       [("y", [1, 320, 180, 320])], consts=[("shape", I64, [4], [1, 320, 180, 320])]))
    C.append(make_case("reshape_4d_to_5d_5x64_45x80", "Reshape", [("x", [5, 64, 45, 80])],
                       [("y", [1, 5, 64, 45, 80])], consts=[("shape", I64, [5], [1, 5, 64, 45, 80])]))
    # Gather of one frame (feat[:, i]) of a 5-D row-major tensor into 4-D NHWC: moves one frame
    for h, w in ((180, 320), (90, 160)):
        C.append(make_case(f"gather_frame_5d_{h}x{w}", "Gather", [("x", [1, 5, 64, h, w])], [("y", [1, 64, h, w])],
                           attrs={"axis": 1}, consts=[("idx", I64, [], [2])], moved_elems=2 * 64 * h * w))
    # PixelShuffle x2 twice: DepthToSpace CRD
    for h, w in ((180, 320), (360, 640)):
        C.append(make_case(f"depthtospace_crd_256_{h}x{w}", "DepthToSpace", [("x", [1, 256, h, w])],
                           [("y", [1, 64, 2 * h, 2 * w])], attrs={"blocksize": 2, "mode": "CRD"}))
    # Unsqueeze 4-D NHWC -> 5-D (torch.stack's first half), TSA's Expand of the attention map
    C.append(make_case("unsqueeze_64_180x320_to_5d", "Unsqueeze", [("x", [1, 64, 180, 320])],
                       [("y", [1, 1, 64, 180, 320])], consts=[("axes", I64, [1], [1])]))
    C.append(make_case("expand_5d_1_to_64_180x320", "Expand", [("x", [1, 5, 1, 180, 320])],
                       [("y", [1, 5, 64, 180, 320])], consts=[("shape", I64, [5], [1, 5, 64, 180, 320])]))
    # A permutation of NHWC data (generic Transpose)
    C.append(make_case("transpose_0231_64_180x320", "Transpose", [("x", [1, 64, 180, 320])],
                       [("y", [1, 180, 320, 64])], attrs={"perm": [0, 2, 3, 1]}))
    return C


def main(argv):
    kiln = argv[argv.index("--kiln") + 1] if "--kiln" in argv else ".device/bin/kiln"
    filt = argv[argv.index("--filter") + 1] if "--filter" in argv else None
    keep = argv[argv.index("--keep") + 1] if "--keep" in argv else None
    if kiln.startswith(".device/") and ".device/bin" not in os.environ.get("LD_LIBRARY_PATH", ""):
        os.environ["LD_LIBRARY_PATH"] = os.path.abspath(".device/bin") + ":" + os.environ.get("LD_LIBRARY_PATH", "")
    os.environ["KILN_NO_VIEW_ALIAS"] = "1"
    print("movement ops at EDVR-M shapes; 'generic' = KILN_MOVE_GENERIC=1 (before), 'fast' = fast paths; "
          "KILN_NO_VIEW_ALIAS=1; bound = bytes / 3e12 s + 2 us")
    base = None if "--no-baseline" in argv else {"KILN_MOVE_GENERIC": "1"}
    res = op_bench.run_cases(cases(), kiln, workdir=keep, filt=filt, baseline_env=base)
    # speedups, one line per case
    by = {}
    for r in res:
        by.setdefault((r["name"], r.get("fp16")), {})[r.get("tag")] = r
    print("\nspeedup generic -> fast (op layer medians):")
    for (name, fp16), d in by.items():
        g, f = d.get("generic", {}).get("op_ms"), d.get("fast", {}).get("op_ms")
        if g and f:
            print(f"  {name:40s} {'fp16' if fp16 else 'fp32'} {g * 1e3:8.2f} -> {f * 1e3:8.2f} us  x{g / f:5.2f}")
    return 1 if any(r.get("rc") for r in res) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
