#!/usr/bin/env python3
"""kiln surgeon: models written by kiln must pass onnx.checker.check_model(full_check=True)
and run in ONNX Runtime with the stored outputs.

For every model in SHARED/sr-fixtures/* and SHARED/onnx-tests/light/*:
  - `kiln surgeon sanitize IN -o OUT` (a plain round trip through the writer),
  - `kiln surgeon sanitize IN -o OUT --fold-constants --cleanup --toposort`,
  - for the fixtures also the round trip with --external-data=1024,
each written model is checked with the full checker and run in ONNX Runtime (CPU) against the
stored output (fixtures: atol 1e-4; light models: 1e-5 + 1e-3*|expected|, as
tests/models/model_test.c) and against ONNX Runtime on the original model (atol 1e-5 + 1e-4*|x|).
Also the graph dumps of `kiln build --dump-graph-after=all` are checked (ONNX Runtime only on
dumps without kiln's own ops).

Exit 0 when everything passes, 1 on a failure, 77 (SKIPPED) when Python's onnx is missing.
"""
import argparse
import glob
import os
import subprocess
import sys
import traceback

try:
    import onnx
    from onnx import numpy_helper
    import numpy as np
except Exception:  # noqa: BLE001 - any import failure means the check cannot run here
    print("SKIPPED: python onnx not installed")
    sys.exit(77)
try:
    import onnxruntime as ort
except Exception:  # noqa: BLE001
    ort = None


def load_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def light_inputs(model):
    """ONNX's light-model runner input: arange(n).reshape(shape) / n, symbolic dims 1."""
    init = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in init:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]
        n = int(np.prod(dims)) if dims else 1
        feeds[vi.name] = (np.arange(n, dtype=np.float32) / np.float32(n)).reshape(dims)
    return feeds


def fixture_inputs(model, fx_dir):
    init = {i.name for i in model.graph.initializer}
    names = [vi.name for vi in model.graph.input if vi.name not in init]
    feeds = {}
    for k, name in enumerate(names):
        feeds[name] = load_pb(os.path.join(fx_dir, "test_data_set_0", "input_%d.pb" % k))
    return feeds


def run_ort(path, feeds):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def close(got, exp, atol, rtol):
    got = np.asarray(got, dtype=np.float64)
    exp = np.asarray(exp, dtype=np.float64)
    if got.shape != exp.shape:
        return False, "shape %s vs %s" % (got.shape, exp.shape)
    err = np.abs(got - exp)
    ok = bool(np.all(err <= atol + rtol * np.abs(exp)))
    return ok, "max abs error %.3g" % (float(err.max()) if err.size else 0.0)


def attr_value(a):
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, onnx.TensorProto):
        arr = numpy_helper.to_array(v)
        return ("tensor", arr.dtype.str, arr.shape, arr.tobytes())
    if isinstance(v, float):
        return ("float", np.float32(v).tobytes())
    if isinstance(v, list) and v and isinstance(v[0], float):
        return ("floats", np.asarray(v, dtype=np.float32).tobytes())
    return v


def type_of(vi):
    t = vi.type.tensor_type
    dims = None
    if t.HasField("shape"):
        dims = [("v", d.dim_value) if d.HasField("dim_value") else ("p", d.dim_param) if d.HasField("dim_param")
                else ("?", None) for d in t.shape.dim]
    return t.elem_type, dims


def same_type(a, b):
    """b keeps a: same elem type and rank; fixed dims equal; a named dim keeps its name (or became
    fixed by inference); a dim a left unknown may be anything."""
    (ea, da), (eb, db) = a, b
    if ea != eb or (da is None) != (db is None):
        return False
    if da is None:
        return True
    if len(da) != len(db):
        return False
    for x, y in zip(da, db):
        if x[0] == "v" and x != y:
            return False
        if x[0] == "p" and not (x == y or y[0] == "v"):
            return False
    return True


def kept_differences(orig, new):
    """What the writer must keep, compared with onnx itself: a list of differences."""
    diffs = []
    for field in ("ir_version", "producer_name", "producer_version", "doc_string", "domain", "model_version"):
        if getattr(orig, field) != getattr(new, field):
            diffs.append("%s %r -> %r" % (field, getattr(orig, field), getattr(new, field)))
    ops = lambda m: sorted((o.domain if o.domain != "ai.onnx" else "", o.version) for o in m.opset_import)  # noqa: E731
    if ops(orig) != ops(new):
        diffs.append("opset_import %s -> %s" % (ops(orig), ops(new)))
    meta = lambda m: [(p.key, p.value) for p in m.metadata_props]  # noqa: E731
    if meta(orig) != meta(new):
        diffs.append("metadata_props differ")
    g, h = orig.graph, new.graph
    if g.name != h.name or g.doc_string != h.doc_string:
        diffs.append("graph name/doc_string differ")
    if len(g.node) != len(h.node):
        diffs.append("%d nodes -> %d" % (len(g.node), len(h.node)))
    else:
        for a, b in zip(g.node, h.node):
            where = "node '%s'" % (a.name or a.op_type)
            if (a.name and a.name != b.name) or a.op_type != b.op_type or (a.domain or "") != (b.domain or ""):
                diffs.append(where + ": name/op/domain differ")
            if list(a.input) != list(b.input) or list(a.output) != list(b.output) or a.doc_string != b.doc_string:
                diffs.append(where + ": inputs/outputs/doc_string differ")
            aa = {x.name: attr_value(x) for x in a.attribute}
            bb = {x.name: attr_value(x) for x in b.attribute}
            if aa != bb:
                diffs.append(where + ": attributes differ (%s)" % sorted(set(aa) ^ set(bb) or
                                                                           [k for k in aa if aa[k] != bb.get(k)]))
    init = {i.name for i in g.initializer}
    for what, a_list, b_list in (("input", [vi for vi in g.input if vi.name not in init],
                                  [vi for vi in h.input if vi.name not in init]), ("output", g.output, h.output)):
        if [vi.name for vi in a_list] != [vi.name for vi in b_list]:
            diffs.append("graph %ss differ: %s -> %s" % (what, [vi.name for vi in a_list], [vi.name for vi in b_list]))
            continue
        for x, y in zip(a_list, b_list):
            if not same_type(type_of(x), type_of(y)):
                diffs.append("graph %s '%s': %s -> %s" % (what, x.name, type_of(x), type_of(y)))
    newvi = {vi.name: type_of(vi) for vi in h.value_info}
    for vi in g.value_info:
        if vi.name not in newvi:
            diffs.append("value_info '%s' lost" % vi.name)
        elif not same_type(type_of(vi), newvi[vi.name]):
            diffs.append("value_info '%s' %s -> %s" % (vi.name, type_of(vi), newvi[vi.name]))
    return diffs


class Checker:
    def __init__(self, kiln, out):
        self.kiln = kiln
        self.out = out
        self.passed = 0
        self.failed = []

    def ok(self, name, detail=""):
        self.passed += 1
        print("PASS %s %s" % (name, detail), flush=True)

    def fail(self, name, detail):
        self.failed.append(name)
        print("FAIL %s: %s" % (name, detail), flush=True)

    def kiln_run(self, name, args):
        r = subprocess.run([self.kiln] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            self.fail(name, "kiln %s: exit %d: %s" % (" ".join(args[:2]), r.returncode, r.stderr.strip()))
            return False
        return True

    def check_model(self, name, path, feeds=None, expected=None, tol=None, original=None):
        try:
            onnx.checker.check_model(path, full_check=True)
        except Exception as e:  # noqa: BLE001
            self.fail(name + " checker", str(e).splitlines()[0] if str(e) else repr(e))
            return
        self.ok(name + " checker")
        if ort is None or feeds is None:
            return
        try:
            got = run_ort(path, feeds)
        except Exception as e:  # noqa: BLE001
            self.fail(name + " onnxruntime", str(e).splitlines()[0] if str(e) else repr(e))
            return
        if expected is not None:
            good, detail = close(got[0], expected, *tol)
            (self.ok if good else self.fail)(name + " onnxruntime vs stored output", detail)
        if original is not None:
            try:
                ref = run_ort(original, feeds)
            except Exception as e:  # noqa: BLE001
                print("NOTE %s: onnxruntime cannot run the original model: %s" % (name, e))
                return
            for k, (g, r) in enumerate(zip(got, ref)):
                good, detail = close(g, r, 1e-5, 1e-4)
                (self.ok if good else self.fail)("%s onnxruntime output %d vs original" % (name, k), detail)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--filter", default="")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    c = Checker(a.kiln, a.out)
    print("onnx %s, onnxruntime %s" % (onnx.__version__, ort.__version__ if ort else "not installed"))

    cases = []  # (name, model path, feeds fn, expected, tolerance)
    for fx in sorted(glob.glob(os.path.join(a.shared, "sr-fixtures", "*"))):
        if os.path.exists(os.path.join(fx, "model.onnx")):
            cases.append((os.path.basename(fx), os.path.join(fx, "model.onnx"), fx, (1e-4, 0.0)))
    for m in sorted(glob.glob(os.path.join(a.shared, "onnx-tests", "light", "light_*.onnx"))):
        cases.append((os.path.basename(m)[:-5], m, None, (1e-5, 1e-3)))

    variants = [("rt", []), ("sanitized", ["--fold-constants", "--cleanup", "--toposort"])]
    for name, model_path, fx, tol in cases:
        if a.filter and a.filter not in name:
            continue
        try:
            orig = onnx.load(model_path, load_external_data=False)
            if fx:
                feeds = fixture_inputs(orig, fx)
                expected = load_pb(os.path.join(fx, "test_data_set_0", "output_0.pb"))
            else:
                feeds = light_inputs(orig)
                expected = load_pb(model_path[:-5] + "_output_0.pb")
        except Exception as e:  # noqa: BLE001
            c.fail(name, "cannot read the test data: %s" % e)
            continue
        vs = list(variants)
        if fx:
            vs.append(("external", ["--external-data=1024"]))
        for vname, flags in vs:
            d = os.path.join(a.out, name + "_" + vname)
            os.makedirs(d, exist_ok=True)
            out = os.path.join(d, "model.onnx")
            if not c.kiln_run(name + "/" + vname, ["surgeon", "sanitize", model_path, "-o", out] + flags):
                continue
            if vname == "rt":
                try:
                    diffs = kept_differences(orig, onnx.load(out, load_external_data=False))
                    if diffs:
                        c.fail(name + "/rt kept", "; ".join(diffs[:5]) + (" (+%d more)" % (len(diffs) - 5)
                                                                        if len(diffs) > 5 else ""))
                    else:
                        c.ok(name + "/rt kept", "(metadata, opsets, nodes, attributes, I/O types, value_info)")
                except Exception:  # noqa: BLE001
                    c.fail(name + "/rt kept", traceback.format_exc().splitlines()[-1])
            try:
                c.check_model(name + "/" + vname, out, feeds, expected, tol, original=model_path)
            except Exception:  # noqa: BLE001
                c.fail(name + "/" + vname, traceback.format_exc().splitlines()[-1])

    # Graph dumps after each pass (kiln's fused ops are in domain "kiln": checker only).
    fx = os.path.join(a.shared, "sr-fixtures", "srvgg_tiny_x2")
    if os.path.isdir(fx) and (not a.filter or a.filter in "dumps"):
        d = os.path.join(a.out, "dumps")
        if c.kiln_run("dumps", ["build", os.path.join(fx, "model.onnx"), "--shapes=input:1x3x24x32",
                                "--dump-graph-after=all", "--dump-dir=" + d]):
            inp = {"input": load_pb(os.path.join(fx, "test_data_set_0", "input_0.pb"))}
            for p in sorted(glob.glob(os.path.join(d, "*.onnx"))):
                m = onnx.load(p, load_external_data=False)
                custom = any(n.domain not in ("", "ai.onnx") for n in m.graph.node)
                c.check_model("dump/" + os.path.basename(p), p, None if custom else inp,
                              None, None, original=None if custom else os.path.join(fx, "model.onnx"))

    print("onnx_check: %d passed, %d failed%s" % (c.passed, len(c.failed),
                                                  (": " + ", ".join(c.failed)) if c.failed else ""))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
