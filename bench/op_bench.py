"""Single-op micro-benchmark of kiln's memory-bound GPU kernels (runs ON THE GPU MACHINE).

For each case it writes a one-node ONNX model (onnx.helper), runs
  kiln exec --onnx=M --shapes=... [--fp16|--noTF32] --noDataTransfers --iterations=200 --warmUp=200
            --duration=0 --dumpProfile
and prints the op layer's median time (per-layer profile, each layer between its own CUDA events),
the bytes the op moves, GB/s, the median of the "(reformat)" rows (graph input/output conversions:
fp32 NCHW <-> fp16 NHWC in --fp16 runs, the Cast transpose) and the CUDA-graph "GPU Compute Time"
median of the whole engine.

Usage (repo root on the device):
  python3 bench/op_bench.py [--kiln .device/bin/kiln] [--filter S] [--keep DIR] [--no-baseline]
Each case runs twice: with KILN_MEMK_GENERIC=1 (the generic kernels, i.e. before the fast paths;
tag 'generic') and normally (tag 'fast'), unless --no-baseline.
As a module:  import op_bench; op_bench.run_cases(CASES, kiln)   (a case is a dict, see make_case).
"""
import os
import re
import subprocess
import sys
import tempfile

OPSET = 17
ITER_FLAGS = ["--noDataTransfers", "--iterations=200", "--warmUp=200", "--duration=0", "--dumpProfile"]

# "[I]    Time(ms)     Avg.(ms)   Median(ms)   Time(%)   Layer"
PROFILE_ROW = re.compile(r"^\[I\]\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+(.*?)\s*$")
GPU_COMPUTE = re.compile(r"GPU Compute Time: .*?median = ([0-9.eE+-]+) ms")


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def make_case(name, op_type, inputs, outputs, attrs=None, consts=None, fp16=True, moved_elems=None, node_inputs=None,
              nodes=None, op_layer=None):
    """A case.
    inputs:  [(name, shape)] float graph inputs.
    outputs: [(name, shape)] float graph outputs.
    consts:  [(name, onnx_dtype_name, dims, values)] initializers ('FLOAT', 'INT64').
    node_inputs: the node's input names (default: graph inputs then consts, in order; '' = omitted).
    nodes:   instead of one op, a list of dicts {op_type, inputs, outputs, attrs, name} (op_layer names the timed one).
    moved_elems: elements read + written by the op layer (default: all inputs + outputs).
    """
    if moved_elems is None:
        moved_elems = sum(numel(s) for _, s in inputs) + sum(numel(s) for _, s in outputs)
    if nodes is None:
        ni = node_inputs if node_inputs is not None else [n for n, _ in inputs] + [c[0] for c in (consts or [])]
        nodes = [{"op_type": op_type, "inputs": ni, "outputs": [n for n, _ in outputs], "attrs": attrs or {},
                  "name": "op"}]
        op_layer = "op"
    return {"name": name, "inputs": inputs, "outputs": outputs, "consts": consts or [], "nodes": nodes,
            "fp16": fp16, "moved_elems": moved_elems, "op_layer": op_layer or nodes[0]["name"]}


def write_model(case, path):
    import onnx
    from onnx import TensorProto, helper

    vi = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s))  # noqa: E731
    inits = [helper.make_tensor(n, getattr(TensorProto, dt), list(dims), list(vals)) for n, dt, dims, vals in case["consts"]]
    nodes = [helper.make_node(nd["op_type"], nd["inputs"], nd["outputs"], name=nd["name"], **nd["attrs"])
             for nd in case["nodes"]]
    graph = helper.make_graph(nodes, case["name"], [vi(n, s) for n, s in case["inputs"]],
                              [vi(n, s) for n, s in case["outputs"]], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def parse_profile(text):
    """[(layer, median_ms)] of the '=== Profile' block, without the Total row; GPU compute median (ms) or None."""
    rows, inside = [], False
    for line in text.splitlines():
        if "=== Profile" in line:
            inside, rows = True, []
            continue
        if not inside:
            continue
        m = PROFILE_ROW.match(line)
        if not m:
            continue
        layer = m.group(5)
        if layer == "Total":
            inside = False
            continue
        rows.append((layer, float(m.group(3))))
    g = GPU_COMPUTE.search(text)
    return rows, (float(g.group(1)) if g else None)


def run_case(case, kiln, workdir, env=None, tag=""):
    stem = case["name"] + ("_fp16" if case["fp16"] else "_fp32") + tag
    path = os.path.join(workdir, stem + ".onnx")
    write_model(case, path)
    shapes = ",".join(f"{n}:{'x'.join(map(str, s))}" for n, s in case["inputs"])
    cmd = [kiln, "exec", f"--onnx={path}", f"--shapes={shapes}"] + (["--fp16"] if case["fp16"] else ["--noTF32"])
    cmd += ITER_FLAGS
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, **(env or {})))
    text = r.stdout + r.stderr
    with open(os.path.join(workdir, stem + ".log"), "w") as f:
        f.write(" ".join(f"{k}={v}" for k, v in (env or {}).items()) + " " + " ".join(cmd) + "\n" + text)
    res = {"name": case["name"], "rc": r.returncode, "cmd": " ".join(cmd)}
    if r.returncode:
        res["error"] = text.strip().splitlines()[-1] if text.strip() else f"exit {r.returncode}"
        return res
    rows, gpu = parse_profile(text)
    es = 2 if case["fp16"] else 4
    res["gpu_ms"] = gpu
    res["bytes"] = case["moved_elems"] * es
    op = [ms for layer, ms in rows if layer == case["op_layer"]]
    # layers named after fused nodes may carry several names; fall back to the non-reformat rows
    if not op:
        op = [ms for layer, ms in rows if layer != "(reformat)"]
    res["op_ms"] = sum(op) if op else None
    res["layers"] = rows
    res["reformats_ms"] = [ms for layer, ms in rows if layer == "(reformat)"]
    return res


def fmt_us(ms):
    return "-" if ms is None else f"{ms * 1e3:8.2f}"


def _line(case, res):
    prec = "fp16" if case["fp16"] else "fp32"
    if res.get("rc"):
        return f"{case['name']:40s} {prec:4s} {res.get('tag', ''):7s} ERROR: {res.get('error', '')[:200]}"
    mb = res["bytes"] / 1e6
    gbs = res["bytes"] / (res["op_ms"] * 1e-3) / 1e9 if res.get("op_ms") else 0.0
    bound = res["bytes"] / 3e12 * 1e6 + 2.0  # the brief's bound: B / 3e12 s + ~2 us
    refs = " ".join(f"{ms * 1e3:.2f}" for ms in res["reformats_ms"]) or "-"
    return (f"{case['name']:40s} {prec:4s} {res.get('tag', ''):7s} {fmt_us(res.get('op_ms'))} {mb:7.2f} {gbs:7.0f} "
            f"{bound:8.2f}  {fmt_us(res.get('gpu_ms'))}  {refs}")


def run_cases(cases, kiln=".device/bin/kiln", workdir=None, filt=None, out=sys.stdout, baseline_env=None):
    """Runs every case (name containing filt, when given) and prints one line per run; with
    baseline_env (e.g. {"KILN_MEMK_GENERIC": "1"}) each case also runs with those variables set
    (tag 'generic') before the normal run (tag 'fast'). Returns the result dicts."""
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="kiln-op-bench-")
    os.makedirs(workdir, exist_ok=True)
    results = []
    print(f"{'case':40s} {'prec':4s} {'run':7s} {'op us':>8s} {'MB':>7s} {'GB/s':>7s} {'bound us':>8s}  "
          f"{'graph us':>8s}  reformat rows us (inputs, then output)", file=out)
    runs = ([("generic", baseline_env)] if baseline_env else []) + [("fast", None)]
    for case in cases:
        if filt and filt not in case["name"]:
            continue
        for tag, env in runs:
            try:
                res = run_case(case, kiln, workdir, env=env, tag="" if tag == "fast" else "_" + tag)
            except Exception as e:  # one broken case must not hide the others
                res = {"name": case["name"], "rc": -1, "error": f"{type(e).__name__}: {e}"}
            res["tag"] = tag
            res["fp16"] = case["fp16"]
            results.append(res)
            print(_line(case, res), file=out)
            out.flush()
    return results


def resize_case(name, n, c, h, w, scale, mode, ctm, nearest=None, fp16=True):
    oh, ow = int(h * scale), int(w * scale)
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    if nearest:
        attrs["nearest_mode"] = nearest
    return make_case(name, "Resize", [("x", [n, c, h, w])], [("y", [n, c, oh, ow])], attrs=attrs,
                     consts=[("roi", "FLOAT", [0], []), ("scales", "FLOAT", [4], [1.0, 1.0, float(scale), float(scale)])],
                     node_inputs=["x", "roi", "scales"], fp16=fp16)


CASES = [
    resize_case("resize_linear_x2_64c_90x160", 1, 64, 90, 160, 2, "linear", "pytorch_half_pixel"),
    resize_case("resize_linear_x2_64c_45x80", 1, 64, 45, 80, 2, "linear", "pytorch_half_pixel"),
    resize_case("resize_linear_x2_64c_90x160", 1, 64, 90, 160, 2, "linear", "pytorch_half_pixel", fp16=False),
    resize_case("resize_linear_x4_3c_180x320", 1, 3, 180, 320, 4, "linear", "pytorch_half_pixel"),
    resize_case("resize_nearest_x4_3c_270x480", 1, 3, 270, 480, 4, "nearest", "asymmetric", "floor"),
    resize_case("resize_nearest_x4_3c_270x480", 1, 3, 270, 480, 4, "nearest", "asymmetric", "floor", fp16=False),
    resize_case("resize_nearest_x2_64c_90x160", 1, 64, 90, 160, 2, "nearest", "asymmetric", "floor"),
    make_case("sigmoid_72c_180x320", "Sigmoid", [("x", [1, 72, 180, 320])], [("y", [1, 72, 180, 320])]),
    make_case("mul_scalar_144c_180x320", "Mul", [("x", [1, 144, 180, 320])], [("y", [1, 144, 180, 320])],
              consts=[("s", "FLOAT", [], [0.2])]),
    make_case("add_64c_180x320", "Add", [("a", [1, 64, 180, 320]), ("b", [1, 64, 180, 320])],
              [("y", [1, 64, 180, 320])]),
    make_case("sigmoid_72c_180x320", "Sigmoid", [("x", [1, 72, 180, 320])], [("y", [1, 72, 180, 320])], fp16=False),
]


def main(argv):
    kiln = argv[argv.index("--kiln") + 1] if "--kiln" in argv else ".device/bin/kiln"
    filt = argv[argv.index("--filter") + 1] if "--filter" in argv else None
    keep = argv[argv.index("--keep") + 1] if "--keep" in argv else None
    if kiln.startswith(".device/") and ".device/bin" not in os.environ.get("LD_LIBRARY_PATH", ""):
        os.environ["LD_LIBRARY_PATH"] = os.path.abspath(".device/bin") + ":" + os.environ.get("LD_LIBRARY_PATH", "")
    print("reformat rows: graph input(s) then output; in --fp16 runs each converts fp32 NCHW <-> fp16 NHWC "
          f"(bytes per element 6; bound for 1x64x180x320: {numel([1, 64, 180, 320]) * 6 / 3e12 * 1e6 + 2:.1f} us)")
    base = None if "--no-baseline" in argv else {"KILN_MEMK_GENERIC": "1"}
    res = run_cases(CASES, kiln, workdir=keep, filt=filt, baseline_env=base)
    return 1 if any(r.get("rc") for r in res) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
