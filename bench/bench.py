#!/usr/bin/env python3
"""kiln benchmark harness (issue 3, point 8). Runs ON THE GPU MACHINE; not a test.

One run: for each case, build the model with seeded random weights, compute PyTorch's fp32
reference output, time PyTorch eager fp32 / tf32 / fp16 channels_last, export ONNX, build kiln
engines (fp32 = --noTF32, tf32 = default, fp16 = --fp16), time them with `kiln exec`, check them
with `kiln compare` against PyTorch's fp32 output, then time torch.compile fp16 in a child
process (it can take long or fail; a time limit ends it). Prints two tables last (speed,
accuracy); logs, results.json, table.txt and results.md (a block for bench/RESULTS.md) go
under $OUT. Large files (ONNX, engines, .npy) go under --workdir.

Usage (from the repository root):  python3 bench/bench.py [--quick] [--cases a,b] [--kiln PATH]
See bench/README.md.
"""
import argparse
import copy
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

# name -> model, input shape, sr (image output: PSNR; by default also ONNX with dynamic H/W),
# targets and the issue's measurements (ms). Optional keys: dynamic_hw (overrides sr for the
# export), opset (default 17), deform (the model has torchvision deform_conv2d: exported as ONNX
# DeformConv, opset >= 19), ort_auto (onnxruntime CPU check under --ort-check auto; default True).
CASES = {
    "animevideov3": dict(model="animevideov3", shape=(1, 3, 270, 480), sr=True, target_ms=0.80,
                         issue=dict(eager_fp32=5.15, eager_fp16_cl=1.33, compile_fp16=0.83)),
    "general-x4v3": dict(model="general-x4v3", shape=(1, 3, 270, 480), sr=True, target_ms=1.6,
                         issue=dict(eager_fp32=9.81, eager_fp16_cl=2.39, compile_fp16=None)),
    "rrdbnet-x4plus": dict(model="rrdbnet-x4plus", shape=(1, 3, 180, 320), sr=True, target_ms=16.0,
                           issue=dict(eager_fp32=81.8, eager_fp16_cl=21.0, compile_fp16=22.6)),
    "resnet50-b64": dict(model="resnet50", shape=(64, 3, 224, 224), sr=False, target_ms=3.5,
                         issue=dict(eager_fp32=19.3, eager_fp16_cl=4.54, compile_fp16=3.10)),
    "resnet50-b1": dict(model="resnet50", shape=(1, 3, 224, 224), sr=False, target_ms=0.8,
                        issue=dict(eager_fp32=4.9, eager_fp16_cl=6.4, compile_fp16=None)),
    # issue 4: EDVR-M, 5 frames in, the centre frame x4 out; static export (the 5-D input does
    # not suit the dynamic-H/W export of the SR nets); 974 GFLOP
    "edvr-m": dict(model="edvr-m", shape=(1, 5, 3, 180, 320), sr=True, target_ms=5.0,
                   issue=dict(eager_fp32=38.2, eager_fp16_cl=17.0, compile_fp16=10.7),
                   dynamic_hw=False, opset=19, deform=True, ort_auto=False),
}
# the cases of a plain run (issue 3); EDVR-M (issue 4) runs when asked for: --cases edvr-m or all
DEFAULT_CASES = ["animevideov3", "general-x4v3", "rrdbnet-x4plus", "resnet50-b64", "resnet50-b1"]
# torch.compile runs last and may be cut by its time limit: most wanted first
COMPILE_ORDER = ["animevideov3", "resnet50-b64", "rrdbnet-x4plus", "general-x4v3", "resnet50-b1", "edvr-m"]
KILN_PRECISIONS = ["fp16", "fp32", "tf32"]  # fp16 first: it carries the targets
KILN_FLAGS = {"fp16": ["--fp16"], "fp32": ["--noTF32"], "tf32": []}
# kiln compare tolerances (Polygraphy semantics with --check-error-stat=mean); the tables judge
# the issue's limits separately
KILN_TOL = {"fp32": (1e-5, 1e-5), "tf32": (1e-3, 1e-3), "fp16": (1e-3, 1e-3)}
# the issue's accuracy limits: mean relative error sum|a-b|/sum|b| vs fp32, PSNR of SR fp16 outputs
ACC_LIMIT = {"fp32": 1e-5, "fp16": 1e-3}
PSNR_LIMIT_DB = 45.0

NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan"


class Interrupted(BaseException):
    """SIGTERM/SIGINT: stop the stages, still write results and print the tables."""


def _on_signal(signum, frame):
    raise Interrupted(f"signal {signum}")


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="utf-8")

    def __call__(self, *a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        self.f.write(s + "\n")
        self.f.flush()

    def raw(self, text):
        """To the log file only (raw tool output)."""
        self.f.write(text if text.endswith("\n") else text + "\n")
        self.f.flush()


class Budget:
    def __init__(self, seconds):
        self.t0 = time.monotonic()
        self.seconds = seconds

    def left(self):
        return self.seconds - (time.monotonic() - self.t0)

    def elapsed(self):
        return time.monotonic() - self.t0


def tail(text, n=15):
    lines = (text or "").rstrip().splitlines()
    return "\n".join("    | " + l for l in lines[-n:])


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def summarize(times_ms):
    t = sorted(float(x) for x in times_ms)
    n = len(t)
    if not n:
        return {}
    med = t[n // 2] if n % 2 else (t[n // 2 - 1] + t[n // 2]) / 2
    p90 = t[min(n - 1, max(0, math.ceil(0.9 * n) - 1))]
    return dict(median=med, min=t[0], max=t[-1], mean=sum(t) / n, p90=p90, n=n)


# --- PyTorch side ---------------------------------------------------------------------------------

def set_tf32(on):
    """The legacy flags (the issue's wording); newer PyTorch warns about them but honours them,
    and mixing them with the new fp32_precision API can raise, so only these are set."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = bool(on)
        torch.backends.cudnn.allow_tf32 = bool(on)


DEVICE = "cuda"  # "cpu" only for --cpu-smoke (checking the harness where there is no GPU)


def sync():
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def empty_cache():
    import torch

    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def time_cuda(fn, p):
    """Median of per-iteration CUDA-event times after warm-up. p: timing parameters."""
    import torch

    fn()  # first call: cudnn.benchmark's search, lazy initialisation
    sync()
    t0 = time.perf_counter()
    for _ in range(3):
        fn()
    sync()
    est = max((time.perf_counter() - t0) / 3 * 1e3, 1e-3)
    warm = int(min(200, max(3, p["warm_s"] * 1e3 / est)))
    for _ in range(warm):
        fn()
    sync()
    n = int(min(p["n_max"], max(p["n_min"], p["time_s"] * 1e3 / est)))
    if DEVICE != "cuda":
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    else:
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        for s, e in ev:
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) for s, e in ev]
    st = summarize(times)
    st["warmup"] = warm + 4
    return st


def accuracy(out, ref, image):
    """kiln compare's statistics, in float64: out vs ref (reference)."""
    import torch

    a = out.detach().double().flatten()
    b = ref.detach().double().flatten()
    if a.numel() != b.numel():
        return dict(error=f"shapes differ: {tuple(out.shape)} vs {tuple(ref.shape)}")
    nonfinite = int((~torch.isfinite(a)).sum().item())
    fin = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[fin], b[fin]
    d = (a - b).abs()
    rel = torch.where(d == 0, torch.zeros_like(d), d / b.abs())  # b == 0, d > 0 -> inf, as kiln
    r = dict(abs_mean=d.mean().item(), abs_max=d.max().item(), rel_mean=rel.mean().item(),
             rel_l1=(d.sum() / b.abs().sum()).item() if b.abs().sum() > 0 else float("inf"),
             nonfinite=nonfinite)
    if image:
        mse = (d * d).mean().item()
        peak = b.abs().max().item()
        r["psnr"] = 10 * math.log10(peak * peak / mse) if mse > 0 else float("inf")
    return r


def _onnx_info(path):
    """Op histogram, opset, input/output names of an exported ONNX file."""
    info = dict(path=path, bytes=os.path.getsize(path))
    try:
        import onnx

        m = onnx.load(path, load_external_data=False)
        ops = {}
        for n in m.graph.node:
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
            ops[key] = ops.get(key, 0) + 1
        init = {i.name for i in m.graph.initializer}
        ins = [i for i in m.graph.input if i.name not in init]
        info["input_name"] = ins[0].name if ins else "input"
        info["output_name"] = m.graph.output[0].name if m.graph.output else "output"
        info["opset"] = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=None)
        info["ops"] = dict(sorted(ops.items(), key=lambda kv: -kv[1]))
        info["nodes"] = len(m.graph.node)
        info["functions"] = len(m.functions)
        info["external_data"] = any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    except Exception as e:
        info["inspect_error"] = f"{type(e).__name__}: {e}"
    return info


def _deform_conv_symbolic():
    """TorchScript exporter: torchvision::deform_conv2d -> ONNX DeformConv (opset 19).
    torchvision's op: (input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
    dilation_h, dilation_w, groups, offset_groups, use_mask); ONNX DeformConv: inputs
    (X, W, offset, B, mask), attributes dilations, group, kernel_shape, offset_group, pads
    (begin h, begin w, end h, end w), strides. Both lay offsets out as (dy, dx) pairs per offset
    group and kernel tap, row-major taps, and the mask as one value per group and tap."""
    try:
        from torch.onnx import symbolic_helper as sh
    except ImportError:  # newer PyTorch keeps it here
        from torch.onnx._internal.torchscript_exporter import symbolic_helper as sh

    @sh.parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b")
    def deform_conv2d(g, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                      dilation_h, dilation_w, groups, offset_groups, use_mask):
        attrs = dict(strides_i=[stride_h, stride_w], pads_i=[pad_h, pad_w, pad_h, pad_w],
                     dilations_i=[dilation_h, dilation_w], group_i=groups, offset_group_i=offset_groups)
        wsz = osz = xsz = None
        try:
            wsz, osz, xsz = sh._get_tensor_sizes(weight), sh._get_tensor_sizes(offset), sh._get_tensor_sizes(input)
        except Exception:
            pass
        if wsz and len(wsz) == 4 and all(isinstance(d, int) for d in wsz[2:]):
            attrs["kernel_shape_i"] = [int(wsz[2]), int(wsz[3])]
        ins = [input, weight, offset, bias] + ([mask] if use_mask else [])
        out = g.op("DeformConv", *ins, **attrs)
        try:  # the output's shape, for the symbolics after it (older bundled ONNX lacks DeformConv)
            if wsz and osz and xsz and all(isinstance(d, int) for d in (xsz[0], wsz[0], osz[2], osz[3])):
                out.setType(input.type().with_sizes([xsz[0], wsz[0], osz[2], osz[3]]))
        except Exception:
            pass
        return out

    return deform_conv2d


def _deform_conv_onnxscript():
    """Dynamo exporter (custom_translation_table): torchvision::deform_conv2d -> ONNX DeformConv.
    Parameter names are those of torchvision's op schema; annotated ones are attributes."""
    from onnxscript import opset19 as op

    def torchvision_deform_conv2d(input, weight, offset, mask, bias, stride_h: int, stride_w: int, pad_h: int,
                                  pad_w: int, dilation_h: int, dilation_w: int, groups: int, offset_groups: int,
                                  use_mask: bool):
        ins = (input, weight, offset, bias, mask) if use_mask else (input, weight, offset, bias)
        return op.DeformConv(*ins, strides=[stride_h, stride_w], pads=[pad_h, pad_w, pad_h, pad_w],
                             dilations=[dilation_h, dilation_w], group=groups, offset_group=offset_groups)

    return torchvision_deform_conv2d


# --deform-export: the exporter paths tried for a model with deform_conv2d, in order
DEFORM_EXPORT_PATHS = {
    "auto": ["dynamo", "dynamo+table", "torchscript+symbolic"],
    "dynamo": ["dynamo"],
    "dynamo-table": ["dynamo+table"],
    "torchscript": ["torchscript+symbolic"],
}


def export_onnx(model, x, path, dynamic_hw, log, opset=17, deform=False, deform_paths=None):
    """Writes the ONNX file; returns its info (exporter used, op histogram, ...).

    Plain models: the TorchScript exporter (dynamo=False), the dynamo one if that fails.
    deform=True (torchvision deform_conv2d inside): the result must hold ONNX DeformConv, so the
    paths are tried in order until one writes it: "dynamo" (PyTorch's current exporter with its
    own torchlib translation, which newer onnxscript releases have), "dynamo+table" (the dynamo
    exporter with our translation in custom_translation_table), "torchscript+symbolic" (the
    TorchScript exporter with our symbolic registered for torchvision::deform_conv2d). Every try
    is recorded in info["attempts"]."""
    import torch

    names = dict(input_names=["input"], output_names=["output"])
    if not deform:
        kw = dict(opset_version=opset, do_constant_folding=True, **names)
        if dynamic_hw:
            kw["dynamic_axes"] = {"input": {2: "height", 3: "width"}, "output": {2: "out_height", 3: "out_width"}}
        how = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                try:
                    torch.onnx.export(model, (x,), path, dynamo=False, **kw)
                except TypeError as e:
                    if "dynamo" not in str(e):
                        raise
                    torch.onnx.export(model, (x,), path, **kw)  # PyTorch without the dynamo switch
                how = "torchscript (dynamo=False)"
            except Exception as e:
                log(f"    legacy ONNX export failed ({type(e).__name__}: {str(e)[:300]}); trying dynamo=True")
                torch.onnx.export(model, (x,), path, dynamo=True, **kw)
                how = "dynamo"
        for w in caught[:3]:
            log.raw(f"    export warning: {str(w.message)[:300]}")
        info = _onnx_info(path)
        info["exporter"] = how
        return info

    if dynamic_hw:
        log("    note: deform export is static (dynamic H/W not used)")
    attempts = []
    for how in deform_paths or DEFORM_EXPORT_PATHS["auto"]:
        t0 = time.time()
        a = dict(path=how)
        attempts.append(a)
        if os.path.exists(path):
            os.remove(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if how.startswith("dynamo"):
                    kw = dict(opset_version=opset, dynamo=True, external_data=False, **names)
                    if how == "dynamo+table":
                        kw["custom_translation_table"] = {torch.ops.torchvision.deform_conv2d.default:
                                                          _deform_conv_onnxscript()}
                    torch.onnx.export(model, (x,), path, **kw)
                else:
                    reg = getattr(torch.onnx, "register_custom_op_symbolic", None)
                    if reg is None:
                        from torch.onnx.utils import register_custom_op_symbolic as reg
                    reg("torchvision::deform_conv2d", _deform_conv_symbolic(), opset)
                    kw = dict(opset_version=opset, do_constant_folding=True, **names)
                    try:
                        torch.onnx.export(model, (x,), path, dynamo=False, **kw)
                    except TypeError as e:
                        if "dynamo" not in str(e):
                            raise
                        torch.onnx.export(model, (x,), path, **kw)
            a["warnings"] = [str(w.message)[:300] for w in caught[:3]]
            if not os.path.exists(path):
                raise RuntimeError("the exporter returned but wrote no file")
            info = _onnx_info(path)
            a["seconds"] = round(time.time() - t0, 2)
            n_dc = (info.get("ops") or {}).get("DeformConv", 0)
            if not n_dc:
                a["error"] = f"no DeformConv in the graph (ops: {info.get('ops') or info.get('inspect_error')})"
                log(f"    export path {how}: {a['error'][:300]}")
                continue
            a["ok"] = True
            info.update(exporter=how, attempts=attempts, deformconv_nodes=n_dc)
            log(f"    export path {how}: ok, {n_dc} DeformConv nodes ({a['seconds']} s)")
            return info
        except Exception as e:
            a["error"] = f"{type(e).__name__}: {str(e)[:600]}"
            a["seconds"] = round(time.time() - t0, 2)
            log(f"    export path {how} failed: {type(e).__name__}: {str(e)[:300]}")
            log.raw(traceback.format_exc())
    raise RuntimeError("no exporter path wrote ONNX DeformConv: " +
                       "; ".join(f"{a['path']}: {a.get('error', '?')[:200]}" for a in attempts))


def stage_prepare_and_eager(name, c, args, R, log, budget, do_eager, do_export):
    """Model, input, fp32 reference (.npy), state dict; eager timings; ONNX export."""
    import numpy as np
    import torch
    from models import count_params, make_model, to_channels_last

    rec = R["cases"][name]
    cdir = os.path.join(args.workdir, name)
    os.makedirs(os.path.join(cdir, "ref"), exist_ok=True)
    set_tf32(False)
    t0 = time.time()
    model = make_model(c["model"], DEVICE, seed=args.seed)
    rec["params"] = count_params(model)
    g = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    x = 0.001 + 0.999 * torch.rand(c["shape"], generator=g)  # [0.001, 1): never zero
    xg = x.to(DEVICE)
    with torch.inference_mode():
        ref = model(xg).float()
    sync()
    fin = bool(torch.isfinite(ref).all().item())
    rec["ref"] = dict(shape=list(ref.shape), finite=fin, mean=ref.mean().item(), std=ref.std().item(),
                      min=ref.min().item(), max=ref.max().item())
    log(f"  model {c['model']}: {rec['params'] / 1e6:.2f} M params, built in {time.time() - t0:.1f} s; "
        f"fp32 output {tuple(ref.shape)} mean {rec['ref']['mean']:.4g} std {rec['ref']['std']:.4g} "
        f"range [{rec['ref']['min']:.4g}, {rec['ref']['max']:.4g}]{'' if fin else '  NOT FINITE'}")
    if not fin:
        rec["notes"].append("PyTorch fp32 output is not finite: random weights out of range")
    if c.get("deform"):
        try:  # the issue quotes EDVR-M's FLOPs (974 GFLOP): ours, counted the same way
            from models import count_flops

            with torch.inference_mode():
                fl, per = count_flops(model, xg)
            rec["gflop"] = round(fl / 1e9, 1)
            log(f"  {fl / 1e9:.1f} GFLOP (2 per multiply-add of convs and DCN GEMMs: "
                + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in per.items()) + ")")
        except Exception as e:
            log(f"  FLOP count failed: {type(e).__name__}: {e}")
    paths = dict(input=os.path.join(cdir, "in.npy"), input16=os.path.join(cdir, "in16.npy"),
                 ref_dir=os.path.join(cdir, "ref"), state=os.path.join(cdir, "state.pt"))
    np.save(paths["input"], np.ascontiguousarray(x.numpy().astype(np.float32)))
    np.save(paths["input16"], np.ascontiguousarray(x.numpy().astype(np.float16)))
    np.save(os.path.join(paths["ref_dir"], "output_0.npy"), np.ascontiguousarray(ref.cpu().numpy().astype(np.float32)))
    torch.save(model.state_dict(), paths["state"])
    rec["paths"] = paths
    with open(os.path.join(cdir, "meta.json"), "w") as f:
        json.dump(dict(case=name, model=c["model"], shape=list(c["shape"]), sr=c["sr"], **paths), f)

    if do_eager:
        def run_variant(key, setup):
            if budget.left() < 20:
                rec["torch"][key] = dict(error="skipped: time budget spent")
                return
            try:
                m, inp, tf32 = setup()
                set_tf32(tf32)
                with torch.inference_mode():
                    st = time_cuda(lambda: m(inp), args.tp)
                    out = m(inp).float()
                sync()
                st["accuracy"] = accuracy(out, ref, c["sr"])
                rec["torch"][key] = st
                log(f"  {key:16s} median {st['median']:8.3f} ms  (min {st['min']:.3f}, p90 {st['p90']:.3f}, n {st['n']})"
                    f"  rel_l1 vs fp32 {st['accuracy'].get('rel_l1', float('nan')):.3g}")
            except Exception as e:
                rec["torch"][key] = dict(error=f"{type(e).__name__}: {str(e)[:500]}")
                log(f"  {key}: FAILED {type(e).__name__}: {str(e)[:300]}")
                log.raw(traceback.format_exc())
            finally:
                set_tf32(False)

        run_variant("eager_fp32", lambda: (model, xg, False))
        run_variant("eager_tf32", lambda: (model, xg, True))
        holder = {}

        def fp16_cl():
            holder["m"], xcl = to_channels_last(copy.deepcopy(model).half(), xg.half())
            return holder["m"], xcl, False

        run_variant("eager_fp16_cl", fp16_cl)
        holder.clear()

    if do_export:
        try:
            t1 = time.time()
            onnx_path = os.path.join(cdir, "model.onnx")
            info = export_onnx(model, xg, onnx_path, c.get("dynamic_hw", c["sr"]), log, opset=c.get("opset", 17),
                               deform=c.get("deform", False), deform_paths=DEFORM_EXPORT_PATHS[args.deform_export])
            info["seconds"] = round(time.time() - t1, 2)
            rec["export"] = info
            log(f"  ONNX: {info.get('exporter')}, opset {info.get('opset')}, {info.get('nodes')} nodes, "
                f"{info['bytes'] / 1e6:.1f} MB, input '{info.get('input_name')}', {info['seconds']} s; ops {info.get('ops')}")
            if args.ort_check == "all" or (args.ort_check == "auto" and c["model"] != "rrdbnet-x4plus"
                                           and c.get("ort_auto", True)):
                ort_check(onnx_path, info.get("input_name", "input"), x.numpy(), ref, c["sr"], rec, log)
        except Exception as e:
            rec["export"] = dict(error=f"{type(e).__name__}: {str(e)[:800]}")
            rec["notes"].append(f"ONNX export failed: {type(e).__name__}: {str(e)[:300]}")
            log(f"  ONNX export FAILED: {type(e).__name__}: {str(e)[:300]}")
            log.raw(traceback.format_exc())
    del model
    empty_cache()


def ort_check(path, in_name, x_np, ref, image, rec, log):
    """The exported ONNX on onnxruntime's CPU provider vs PyTorch: tells an export problem
    from a kiln problem when kiln disagrees."""
    import torch

    try:
        import onnxruntime as ort

        t0 = time.time()
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        y = sess.run(None, {in_name: x_np})[0]
        acc = accuracy(torch.from_numpy(y), ref.cpu(), image)
        rec["export"]["ort_cpu"] = acc
        log(f"  onnxruntime CPU vs PyTorch fp32: rel_l1 {acc.get('rel_l1', float('nan')):.3g}, "
            f"max abs {acc.get('abs_max', float('nan')):.3g} ({time.time() - t0:.1f} s)")
    except Exception as e:
        rec["export"]["ort_cpu"] = dict(error=f"{type(e).__name__}: {str(e)[:300]}")
        log(f"  onnxruntime check failed: {type(e).__name__}: {str(e)[:200]}")


# --- kiln side ----------------------------------------------------------------------------------

def run_cmd(cmd, log_path, timeout, log):
    """Runs a command, output (stdout+stderr) to log_path and returned; never raises for it."""
    t0 = time.time()
    timeout = max(1, int(timeout))
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           text=True, errors="replace", cwd=ROOT)
        rc, text = p.returncode, p.stdout or ""
    except subprocess.TimeoutExpired as e:
        out = e.stdout or b""
        text = (out.decode("utf-8", "replace") if isinstance(out, bytes) else out) + f"\n[bench] TIMEOUT after {timeout} s\n"
        rc = "timeout"
    except OSError as e:
        rc, text = "oserror", f"[bench] cannot run: {e}\n"
    secs = time.time() - t0
    with open(log_path, "w", encoding="utf-8") as f:
        f.write("$ " + " ".join(shlex.quote(a) for a in cmd) + "\n" + text + f"\n[bench] rc={rc} in {secs:.2f} s\n")
    log.raw(f"$ {' '.join(shlex.quote(a) for a in cmd)}\n[rc={rc}, {secs:.2f} s]\n{text}")
    return rc, text, secs


def parse_build(text):
    d = {}
    m = re.search(r"Engine built(?: from .*?)? in (" + NUM + r") s", text)
    if m:
        d["build_s"] = fnum(m.group(1))
    lines = text.splitlines()
    d["peak_lines"] = [l.strip() for l in lines if re.search(r"peak|arena|activation memory", l, re.I)][:6]
    d["warnings"] = [l.strip() for l in lines if l.startswith("[W]") or re.search(r"\bwarning\b", l, re.I)][:20]
    return d


def parse_exec(text, times_path):
    d = {}
    try:
        with open(times_path) as f:
            recs = json.load(f)
        comp = [float(r["computeMs"]) for r in recs if isinstance(r, dict) and "computeMs" in r]
        if comp:
            d.update(summarize(comp))
            d["source"] = "exportTimes computeMs"
    except Exception as e:
        d["times_json_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    summ = {}
    for line in text.splitlines():
        m = re.search(r"(Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency):(.*)", line)
        if m and "=" in m.group(2):
            kv = {k.strip(): fnum(v) for k, v in re.findall(r"([A-Za-z0-9()% ]+?) = (" + NUM + r") ms", m.group(2))}
            summ[m.group(1)] = kv
    if summ:
        d["summary"] = summ
    gpu = summ.get("GPU Compute Time", {})
    if "median" not in d and gpu.get("median") is not None:
        d.update(median=gpu.get("median"), min=gpu.get("min"), max=gpu.get("max"), mean=gpu.get("mean"),
                 source="Performance summary")
    m = re.search(r"Throughput:\s*(" + NUM + r")\s*qps", text)
    if m:
        d["qps"] = fnum(m.group(1))
    m = re.search(r"(" + NUM + r") megapixels/s", text)
    if m:
        d["megapixels_s"] = fnum(m.group(1))
    m = re.search(r"Timing: (\d+) iteration", text)
    if m:
        d["iterations"] = int(m.group(1))
    d["warnings"] = [l.strip() for l in text.splitlines() if l.startswith("[W]")][:10]
    return d


def parse_compare(text):
    d = {}
    pats = {
        "abs": r"absolute error: mean = (" + NUM + r"), median = (" + NUM + r"), max = (" + NUM + r")",
        "rel": r"relative error: mean = (" + NUM + r"), median = (" + NUM + r"), max = (" + NUM + r")",
    }
    for k, pat in pats.items():
        m = re.search(pat, text)
        if m:
            d[k + "_mean"], d[k + "_median"], d[k + "_max"] = (fnum(g) for g in m.groups())
    m = re.search(r"sum\|a-b\|/sum\|b\|:\s*(" + NUM + r")", text)
    if m:
        d["rel_l1"] = fnum(m.group(1))
    m = re.search(r"PSNR:\s*(" + NUM + r") dB", text)
    if m:
        d["psnr"] = fnum(m.group(1))
    m = re.search(r"NaN/Inf: engine (\d+)/(\d+), reference (\d+)/(\d+)", text)
    if m:
        d["nonfinite"] = int(m.group(1)) + int(m.group(2))
        d["ref_nonfinite"] = int(m.group(3)) + int(m.group(4))
    if re.search(r"PASSED \|", text):
        d["verdict"] = "PASSED"
    elif re.search(r"FAILED \|", text) or re.search(r"\bFAILED\b", text):
        d["verdict"] = "FAILED"
    return d


def stage_kiln(name, c, args, R, log, budget):
    rec = R["cases"][name]
    exp = rec.get("export", {})
    if "path" not in exp or "paths" not in rec:
        rec["notes"].append("kiln skipped: no ONNX export")
        log("  kiln skipped: no ONNX export")
        return
    onnx_path = exp["path"]
    in_name = exp.get("input_name", "input")
    shape = "x".join(str(d) for d in c["shape"])
    kdir = os.path.join(args.out, "kiln")
    os.makedirs(kdir, exist_ok=True)
    tcache = os.path.join(args.workdir, "timing.cache")
    exec_timed_out = None  # a timed-out exec (e.g. an op run on the CPU) would time out again: skip later ones
    for prec in [q for q in KILN_PRECISIONS if q in args.kiln_precisions.split(",")]:
        k = rec["kiln"].setdefault(prec, {})
        if budget.left() < 25:
            k["error"] = "skipped: time budget spent"
            log(f"  kiln {prec}: skipped (time budget spent)")
            continue
        base = os.path.join(kdir, f"{name}_{prec}")
        engine = os.path.join(args.workdir, name, f"{prec}.kiln")
        flags = KILN_FLAGS[prec]
        # 1. build (tactic timing) once; exec and compare use the same engine file
        cmd = [args.kiln, "build", onnx_path, f"--saveEngine={engine}", f"--shapes={in_name}:{shape}",
               f"--timingCacheFile={tcache}", "--verbose"] + flags
        rc, text, secs = run_cmd(cmd, base + "_build.log", min(args.build_timeout, budget.left() - 10), log)
        b = parse_build(text)
        b.update(rc=rc, wall_s=round(secs, 2))
        k["build"] = b
        if rc == 0 and os.path.exists(engine):
            for w in b["warnings"][:3] + b["peak_lines"][:1]:
                log(f"  kiln {prec} build: {w[:200]}")
            eng_args = [f"--loadEngine={engine}"]
            cmp_args = [f"--engine={engine}"]
            k["engine_bytes"] = os.path.getsize(engine)
        else:
            # build failed: let exec/compare build on the fly, so their own errors show too
            log(f"  kiln {prec}: build FAILED (rc {rc}, {secs:.1f} s):\n{tail(text, 12)}")
            eng_args = [f"--onnx={onnx_path}"] + flags
            cmp_args = list(flags)
            k["error"] = f"build rc={rc}"
        # 2. timing
        est = (rec["torch"].get({"fp16": "eager_fp16_cl", "fp32": "eager_fp32", "tf32": "eager_tf32"}[prec], {})
               .get("median") or 5.0)
        iters = int(min(5000, max(args.kiln_min_iters, args.kiln_time_s * 1e3 / max(est, 0.01))))
        times = base + "_times.json"
        if os.path.exists(times):
            os.remove(times)
        cmd = [args.kiln, "exec"] + eng_args + [f"--shapes={in_name}:{shape}", f"--iterations={iters}",
                                               f"--warmUp={args.kiln_warmup_ms}", "--duration=0", "--noDataTransfers",
                                               f"--exportTimes={times}"]
        tmo = min(args.exec_timeout + (0 if rc == 0 else args.build_timeout), budget.left() - 5)
        if exec_timed_out:
            erc, etext, esecs = "skipped", f"skipped: kiln exec {exec_timed_out} of this case timed out", 0.0
        else:
            erc, etext, esecs = run_cmd(cmd, base + "_exec.log", tmo, log)
            if erc == "timeout":
                exec_timed_out = prec
                rec["notes"].append(f"kiln {prec}: exec timed out ({tmo:.0f} s); later precisions' exec skipped")
        e = parse_exec(etext, times) if erc != "skipped" else dict(error=etext)
        e.update(rc=erc, wall_s=round(esecs, 2), requested_iterations=iters)
        k["exec"] = e
        if erc == 0 and e.get("median") is not None:
            k["median"] = e["median"]
            if rc != 0:
                k.pop("error", None)
                rec["notes"].append(f"kiln {prec}: `kiln build` failed (rc {rc}); timed the engine `kiln exec --onnx` built")
            log(f"  kiln {prec:4s}  median {e['median']:8.3f} ms  (min {e.get('min', float('nan')):.3f}, "
                f"n {e.get('n', e.get('iterations'))}, {e.get('source')}); build {b.get('build_s', round(secs, 1))} s"
                + (f"; {e['warnings'][0]}" if e.get("warnings") else ""))
        elif erc == "skipped":
            k["error"] = k.get("error") or etext
            log(f"  kiln {prec}: exec {etext}")
        else:
            k["error"] = k.get("error") or f"exec rc={erc}"
            log(f"  kiln {prec}: exec FAILED (rc {erc}, {esecs:.1f} s):\n{tail(etext, 12)}")
        if budget.left() < 15:
            k["compare"] = dict(error="skipped: time budget spent")
            continue
        # 3. accuracy against PyTorch fp32 on the same input
        atol, rtol = KILN_TOL[prec]
        paths = rec["paths"]

        def compare(input_path):
            cmd = [args.kiln, "compare", onnx_path] + cmp_args + [
                f"--loadInputs={in_name}:{input_path}", f"--loadRefOutputs={paths['ref_dir']}",
                "--check-error-stat=mean", f"--atol={atol}", f"--rtol={rtol}"]
            return run_cmd(cmd, base + "_compare.log", min(args.compare_timeout, budget.left() - 5), log)

        crc, ctext, csecs = compare(paths["input"])
        if crc not in (0, 1) and re.search(r"is float16, the file holds float32", ctext):
            crc, ctext, csecs = compare(paths["input16"])  # an engine with fp16 I/O
        cm = parse_compare(ctext)
        cm.update(rc=crc, wall_s=round(csecs, 2))
        k["compare"] = cm
        if "rel_l1" in cm or "abs_mean" in cm:
            log(f"  kiln {prec:4s}  vs PyTorch fp32: mean rel (sum|a-b|/sum|b|) {cm.get('rel_l1', float('nan')):.3g}, "
                f"elementwise mean rel {cm.get('rel_mean', float('nan')):.3g}, max abs {cm.get('abs_max', float('nan')):.3g}"
                + (f", PSNR {cm['psnr']:.2f} dB" if cm.get("psnr") is not None else "") + f"  [{cm.get('verdict', '?')}]")
        else:
            log(f"  kiln {prec}: compare gave no statistics (rc {crc}):\n{tail(ctext, 12)}")


def find_kiln(given):
    """--kiln as given (relative to the repository root or the current folder); for the default,
    also the usual build outputs and PATH."""
    cands = [given if os.path.isabs(given) else os.path.join(ROOT, given), os.path.abspath(given)]
    if given == ".device/bin/kiln":
        cands += [os.path.join(ROOT, p) for p in ("build-device/kiln", "build/kiln")]
        w = shutil.which("kiln")
        if w:
            cands.append(w)
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return cands[0]


def kiln_version(args, log):
    if not args.kiln_ok:
        return None
    try:
        p = subprocess.run([args.kiln, "version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        return p.stdout.strip()
    except Exception as e:
        return f"error: {e}"


# --- torch.compile (child process) ------------------------------------------------------------------

def compile_worker(args):
    """Child: for each case, torch.compile the fp16 channels_last model and time it. One JSON line
    per case, to stdout and to workdir/compile_results.jsonl, as soon as it is done."""
    import numpy as np
    import torch
    from models import build_model, to_channels_last

    torch.backends.cudnn.benchmark = True
    set_tf32(False)
    out_path = os.path.join(args.workdir, "compile_results.jsonl")
    for name in args.case_list:
        rec = dict(case=name, mode=args.compile_mode)
        try:
            with open(os.path.join(args.workdir, name, "meta.json")) as f:
                meta = json.load(f)
            m = build_model(meta["model"])
            m.load_state_dict(torch.load(meta["state"], map_location="cpu"))
            m, x = to_channels_last(m.eval().to(DEVICE).half(),
                                    torch.from_numpy(np.load(meta["input"])).to(DEVICE).half())
            ref = torch.from_numpy(np.load(os.path.join(meta["ref_dir"], "output_0.npy"))).to(DEVICE)
            cm = torch.compile(m, mode=None if args.compile_mode == "default" else args.compile_mode, dynamic=False)
            t0 = time.time()
            with torch.no_grad():
                y = cm(x)
                sync()
                rec["compile_s"] = round(time.time() - t0, 2)
                rec.update(time_cuda(lambda: cm(x), args.tp))
                y = cm(x).float()
            rec["accuracy"] = accuracy(y, ref, meta["sr"])
            del cm, m
            torch._dynamo.reset()
            empty_cache()
        except Exception as e:
            rec["error"] = f"{type(e).__name__}: {str(e)[:800]}"
            traceback.print_exc()
        line = json.dumps(rec)
        with open(out_path, "a") as f:
            f.write(line + "\n")
        print("COMPILE_RESULT " + line, flush=True)


def stage_compile(names, args, R, log, budget):
    todo = [n for n in COMPILE_ORDER if n in names and "paths" in R["cases"][n]]
    for n in names:
        if n not in todo:
            R["cases"][n]["compile"] = dict(error="skipped: no prepared model")
    if not todo:
        return
    left = budget.left() - 10
    if left < 40:
        for n in todo:
            R["cases"][n]["compile"] = dict(error="skipped: time budget spent")
        log("torch.compile: skipped (time budget spent)")
        return
    limit = int(min(args.compile_timeout, left))
    out_path = os.path.join(args.workdir, "compile_results.jsonl")
    if os.path.exists(out_path):
        os.remove(out_path)
    cmd = [sys.executable, os.path.abspath(__file__), "--compile-worker", "--workdir", args.workdir,
           "--cases", ",".join(todo), "--compile-mode", args.compile_mode, "--seed", str(args.seed)]
    if args.quick:
        cmd.append("--quick")
    if args.cpu_smoke:
        cmd.append("--cpu-smoke")
    env = dict(os.environ)
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(args.workdir, "inductor-cache"))
    log(f"torch.compile fp16 (mode {args.compile_mode}) in a child process, limit {limit} s: {', '.join(todo)}")
    t0 = time.time()
    timed_out = False
    with open(os.path.join(args.out, "compile.log"), "w") as lf:
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        try:
            p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # the child's own group: inductor's compile workers too
                except OSError:
                    pass
                p.wait()
    done = {}
    try:
        with open(out_path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                    done[r["case"]] = r
                except Exception:
                    pass
    except OSError:
        pass
    for n in todo:
        r = done.get(n)
        if r is None:
            why = f"timed out (limit {limit} s)" if timed_out else f"child exited {p.returncode} before it"
            R["cases"][n]["compile"] = dict(error=why)
            log(f"  {n}: torch.compile fp16 {why}")
            continue
        R["cases"][n]["compile"] = r
        if "median" in r:
            log(f"  {n}: torch.compile fp16 median {r['median']:.3f} ms (n {r['n']}, compile {r.get('compile_s')} s), "
                f"rel_l1 vs fp32 {r.get('accuracy', {}).get('rel_l1', float('nan')):.3g}")
        else:
            log(f"  {n}: torch.compile fp16 FAILED: {r.get('error', '?')[:300]}")
    log(f"torch.compile stage: {time.time() - t0:.1f} s (see compile.log)")


# --- environment and tables -------------------------------------------------------------------------

def device_commit():
    """The commit the carried binaries were built from (.device/COMMIT, written by
    bench/prepare-device.sh); the device's own .git may be older than the carried tree."""
    try:
        with open(os.path.join(ROOT, ".device", "COMMIT")) as f:
            return f.read().strip() or None
    except OSError:
        return None


def git_commit():
    """The checkout's commit from .git files (no git command); None when there is no .git."""
    try:
        gd = os.path.join(ROOT, ".git")
        if os.path.isfile(gd):
            with open(gd) as f:
                gd = os.path.join(ROOT, f.read().split("gitdir:", 1)[1].strip())
        with open(os.path.join(gd, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref:"):
            return head
        ref = head[4:].strip()
        dirs = [gd]
        if os.path.exists(os.path.join(gd, "commondir")):
            with open(os.path.join(gd, "commondir")) as f:
                dirs.append(os.path.normpath(os.path.join(gd, f.read().strip())))
        for d in dirs:
            p = os.path.join(d, ref)
            if os.path.exists(p):
                with open(p) as f:
                    return f.read().strip()
            pr = os.path.join(d, "packed-refs")
            if os.path.exists(pr):
                with open(pr) as f:
                    for line in f:
                        if line.strip().endswith(" " + ref):
                            return line.split()[0]
    except Exception:
        pass
    return None


def env_info(args):
    d = dict(date_utc=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             host=platform.node(), python=sys.version.split()[0],
             command="python3 " + " ".join(shlex.quote(a) for a in sys.argv),
             commit=args.commit or os.environ.get("KILN_COMMIT") or device_commit() or git_commit() or "unknown")
    try:
        import torch

        d.update(torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        if torch.cuda.is_available():
            pr = torch.cuda.get_device_properties(0)
            d.update(gpu=torch.cuda.get_device_name(0), sms=pr.multi_processor_count,
                     gpu_mem_gib=round(pr.total_memory / 2 ** 30, 1))
    except Exception as e:
        d["torch_error"] = str(e)
    try:
        p = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,"
                            "temperature.gpu,power.draw,utilization.gpu", "--format=csv,noheader"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
        d["nvidia_smi"] = p.stdout.strip()
    except Exception as e:
        d["nvidia_smi"] = f"unavailable: {e}"
    return d


def fms(v):
    if v is None:
        return "-"
    if v < 10:
        return f"{v:.3f}"
    if v < 100:
        return f"{v:.2f}"
    return f"{v:.1f}"


def med(d):
    return d.get("median") if isinstance(d, dict) else None


def cell(d):
    """A median, or why there is none."""
    if not isinstance(d, dict) or not d:
        return "-"
    if d.get("median") is not None:
        return fms(d["median"])
    err = d.get("error", "")
    return "skip" if err.startswith("skipped") else "FAIL" if err else "-"


def fsci(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return str(v)
    return f"{v:.{digits}e}"


def speed_table(names, R):
    hdr = ["case", "input", "eager32", "eagertf32", "eager16cl", "compile16", "kiln32", "kilntf32", "kiln16",
           "eager16/kiln16", "compile16/kiln16", "target16", "met", "kiln32,tf32 vs eager"]
    rows = []
    for n in names:
        r = R["cases"][n]
        t, k = r["torch"], r["kiln"]
        k16, e16, c16 = med(k.get("fp16")), med(t.get("eager_fp16_cl")), med(r.get("compile"))
        k32, e32, ktf, etf = med(k.get("fp32")), med(t.get("eager_fp32")), med(k.get("tf32")), med(t.get("eager_tf32"))
        tgt = CASES[n]["target_ms"]
        chk = []
        if k32 and e32:
            chk.append("fp32 " + ("ok" if k32 <= e32 else "NO"))
        if ktf and etf:
            chk.append("tf32 " + ("ok" if ktf <= etf else "NO"))
        rows.append([n, "x".join(map(str, CASES[n]["shape"])), cell(t.get("eager_fp32")), cell(t.get("eager_tf32")),
                     cell(t.get("eager_fp16_cl")), cell(r.get("compile")), cell(k.get("fp32")), cell(k.get("tf32")),
                     cell(k.get("fp16")), f"{e16 / k16:.2f}x" if k16 and e16 else "-",
                     f"{c16 / k16:.2f}x" if k16 and c16 else "-", f"<= {tgt:g}",
                     ("yes" if k16 <= tgt else "NO") if k16 else "-", ", ".join(chk) or "-"])
    return hdr, rows


def acc_table(names, R):
    hdr = ["case", "what (vs PyTorch fp32)", "mean rel", "elem mean rel", "max abs", "PSNR dB", "NaN/Inf", "kiln compare",
           "limit"]
    rows = []
    for n in names:
        r = R["cases"][n]
        sr = CASES[n]["sr"]
        for prec in KILN_PRECISIONS[1:] + KILN_PRECISIONS[:1]:  # fp32, tf32, fp16
            cm = r["kiln"].get(prec, {}).get("compare")
            if not cm:
                continue
            lim, ok = [], []
            if prec in ACC_LIMIT:
                lim.append(f"<= {ACC_LIMIT[prec]:g}")
                if cm.get("rel_l1") is not None:
                    ok.append(cm["rel_l1"] <= ACC_LIMIT[prec])
            if prec == "fp16" and sr:
                lim.append(f"PSNR >= {PSNR_LIMIT_DB:g}")
                if cm.get("psnr") is not None:
                    ok.append(cm["psnr"] >= PSNR_LIMIT_DB)
            verdict = cm.get("verdict") or (cm.get("error") or f"rc {cm.get('rc')}")[:20]
            rows.append([n, f"kiln {prec}", fsci(cm.get("rel_l1")), fsci(cm.get("rel_mean")), fsci(cm.get("abs_max")),
                         f"{cm['psnr']:.2f}" if cm.get("psnr") is not None else "-",
                         str(cm.get("nonfinite", "-")), verdict,
                         (" ".join(lim) + (" " + ("met" if all(ok) else "MISSED") if ok else "")) if lim else "-"])
        for key, label in (("eager_tf32", "torch eager tf32"), ("eager_fp16_cl", "torch eager fp16cl")):
            a = r["torch"].get(key, {}).get("accuracy")
            if a:
                rows.append([n, label, fsci(a.get("rel_l1")), fsci(a.get("rel_mean")), fsci(a.get("abs_max")),
                             f"{a['psnr']:.2f}" if a.get("psnr") is not None else "-", str(a.get("nonfinite", "-")), "", ""])
        a = (r.get("export") or {}).get("ort_cpu")
        if a and "error" not in a:
            rows.append([n, "onnxruntime CPU fp32", fsci(a.get("rel_l1")), fsci(a.get("rel_mean")), fsci(a.get("abs_max")),
                         f"{a['psnr']:.2f}" if a.get("psnr") is not None else "-", str(a.get("nonfinite", "-")), "", ""])
        a = (r.get("compile") or {}).get("accuracy")
        if a:
            rows.append([n, "torch.compile fp16", fsci(a.get("rel_l1")), fsci(a.get("rel_mean")), fsci(a.get("abs_max")),
                         f"{a['psnr']:.2f}" if a.get("psnr") is not None else "-", str(a.get("nonfinite", "-")), "", ""])
    return hdr, rows


def fmt_table(hdr, rows, md=False):
    w = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)] if rows else [len(h) for h in hdr]
    if md:
        out = ["| " + " | ".join(hdr) + " |", "|" + "|".join("---" for _ in hdr) + "|"]
        out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
        return "\n".join(out)
    line = lambda r: "  ".join(str(x).ljust(w[i]) if i < 2 else str(x).rjust(w[i]) for i, x in enumerate(r))
    return "\n".join([line(hdr), "  ".join("-" * x for x in w)] + [line(r) for r in rows])


def write_outputs(names, R, args, final_text):
    try:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(R, f, indent=1, default=str)
    except Exception as e:
        print(f"[bench] cannot write results.json: {e}", flush=True)
    if final_text is None:
        return
    try:
        with open(os.path.join(args.out, "table.txt"), "w") as f:
            f.write(final_text + "\n")
        m = R["meta"]
        sh, sr = speed_table(names, R)
        ah, ar = acc_table(names, R)
        md = [f"### {m.get('date_utc')} — {m.get('gpu', '?')}, commit {m.get('commit')}", "",
              f"- command: `{m.get('command')}`",
              f"- torch {m.get('torch')} (CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}), kiln: {m.get('kiln_version')}",
              f"- nvidia-smi: {m.get('nvidia_smi')}",
              f"- torch.compile mode: {args.compile_mode}; {'--quick' if args.quick else 'full'} run, "
              f"{m.get('total_s', '?')} s", "",
              "Medians in ms (CUDA events after warm-up; kiln: `kiln exec` GPU compute, --noDataTransfers).", "",
              fmt_table(sh, sr, md=True), "", "Accuracy against PyTorch fp32 (TF32 off) on the same input:", "",
              fmt_table(ah, ar, md=True), ""]
        notes = [f"- {n}: {x}" for n in names for x in R["cases"][n]["notes"]]
        if notes:
            md += ["Notes:", ""] + notes + [""]
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write("\n".join(md) + "\n")
    except Exception as e:
        print(f"[bench] cannot write tables: {e}", flush=True)


# --- main ---------------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description="kiln vs PyTorch benchmark (run on the GPU machine)")
    ap.add_argument("--cases", default="default",
                    help="comma list of: " + ", ".join(CASES) + " ('resnet50' = both resnet cases; 'default' = "
                         "the issue-3 cases, all but edvr-m; 'all' = every case; default: default)")
    ap.add_argument("--quick", action="store_true", help="fewer iterations and a shorter time budget (~4 min)")
    ap.add_argument("--kiln", default=".device/bin/kiln", help="kiln CLI (default .device/bin/kiln)")
    ap.add_argument("--stages", default="eager,kiln,compile", help="any of eager,kiln,compile (default all)")
    ap.add_argument("--kiln-precisions", default="fp16,fp32,tf32", help="kiln precisions to build and time")
    ap.add_argument("--compile-mode", default="default",
                    help="torch.compile mode: default, max-autotune-no-cudagraphs, reduce-overhead, ...")
    ap.add_argument("--compile-timeout", type=int, default=None, help="seconds for the whole torch.compile stage")
    ap.add_argument("--budget", type=int, default=None, help="seconds for the whole run (default 470, --quick 225)")
    ap.add_argument("--build-timeout", type=int, default=240, help="seconds per kiln build")
    ap.add_argument("--exec-timeout", type=int, default=120, help="seconds per kiln exec")
    ap.add_argument("--compare-timeout", type=int, default=120, help="seconds per kiln compare")
    ap.add_argument("--workdir", default=None, help="ONNX, engines, .npy (default /tmp/kiln-bench)")
    ap.add_argument("--out", default=None, help="logs and results (default $OUT, else bench-out)")
    ap.add_argument("--commit", default=None,
                    help="commit to record (default: $KILN_COMMIT, .device/COMMIT, or .git/HEAD)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ort-check", choices=("auto", "all", "none"), default="auto",
                    help="run each ONNX on onnxruntime's CPU provider too (the export's own error floor); "
                         "auto: all but rrdbnet, which takes too long on a CPU")
    ap.add_argument("--deform-export", choices=tuple(DEFORM_EXPORT_PATHS), default="auto",
                    help="exporter path for models with deform_conv2d (edvr-m): auto tries dynamo, "
                         "dynamo with our DeformConv translation, TorchScript with our symbolic, in order")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="check the harness on a machine without a GPU: CPU, tiny shapes, numbers meaningless")
    ap.add_argument("--compile-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    names = []
    for tok in [t.strip() for t in args.cases.split(",") if t.strip()]:
        if tok == "all":
            names += list(CASES)
        elif tok == "default":
            names += DEFAULT_CASES
        elif tok == "resnet50":
            names += ["resnet50-b64", "resnet50-b1"]
        elif tok in CASES:
            names.append(tok)
        else:
            ap.error(f"unknown case '{tok}' (cases: {', '.join(CASES)}, resnet50, default, all)")
    args.case_list = [n for n in CASES if n in names] if not args.compile_worker else names
    args.stage_set = {s.strip() for s in args.stages.split(",") if s.strip()}
    bad = args.stage_set - {"eager", "kiln", "compile"}
    if bad:
        ap.error(f"unknown stage(s) {', '.join(sorted(bad))} (eager, kiln, compile)")
    if args.cpu_smoke:
        global DEVICE
        DEVICE = "cpu"
        tiny = {"animevideov3": (1, 3, 24, 40), "general-x4v3": (1, 3, 24, 40), "rrdbnet-x4plus": (1, 3, 16, 24),
                "resnet50-b64": (2, 3, 64, 64), "resnet50-b1": (1, 3, 64, 64),
                "edvr-m": (1, 5, 3, 16, 16)}
        for n, shp in tiny.items():
            CASES[n]["shape"] = shp
        args.quick = True
    q = args.quick
    args.tp = dict(n_max=20 if q else 50, n_min=5 if q else 10, time_s=1.0 if q else 3.0, warm_s=0.1 if q else 0.3)
    args.kiln_time_s = 0.3 if q else 1.0
    args.kiln_min_iters = 20 if q else 50
    args.kiln_warmup_ms = 200 if q else 500
    if args.budget is None:
        args.budget = 225 if q else 470
    if args.compile_timeout is None:
        args.compile_timeout = 150 if q else 300
    args.workdir = os.path.abspath(args.workdir or "/tmp/kiln-bench")
    args.out = os.path.abspath(args.out or os.environ.get("OUT") or os.path.join(ROOT, "bench-out"))
    return args


def main(argv):
    args = parse_args(argv)
    if args.compile_worker:
        compile_worker(args)
        return 0
    budget = Budget(args.budget)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    log = Log(os.path.join(args.out, "bench.log"))
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    names = args.case_list
    R = dict(meta={}, cases={n: dict(case=n, shape=list(CASES[n]["shape"]), target_ms=CASES[n]["target_ms"],
                                     issue=CASES[n]["issue"], torch={}, kiln={}, compile=None, notes=[]) for n in names})
    final = None
    try:
        kpath = find_kiln(args.kiln)
        args.kiln = kpath
        args.kiln_ok = os.path.isfile(kpath) and os.access(kpath, os.X_OK)
        if "kiln" in args.stage_set and not args.kiln_ok:
            log(f"[bench] kiln CLI not found at {kpath}: kiln stages skipped (give --kiln PATH)")
        R["meta"] = env_info(args)
        R["meta"]["kiln_path"] = kpath
        R["meta"]["kiln_version"] = kiln_version(args, log)
        R["meta"]["quick"] = args.quick
        R["meta"]["compile_mode"] = args.compile_mode
        m = R["meta"]
        log(f"[bench] {m['date_utc']}  {m.get('gpu')}  torch {m.get('torch')} cuDNN {m.get('cudnn')}  "
            f"kiln {m.get('kiln_version')}  commit {m['commit']}")
        log(f"[bench] nvidia-smi: {m.get('nvidia_smi')}")
        log(f"[bench] cases {', '.join(names)}; stages {','.join(sorted(args.stage_set))}; budget {args.budget} s; "
            f"out {args.out}; workdir {args.workdir}")
        import torch

        if DEVICE == "cuda" and not torch.cuda.is_available():
            log("[bench] no CUDA device visible to PyTorch: nothing to do")
            return 1
        torch.backends.cudnn.benchmark = True
        do_kiln = "kiln" in args.stage_set and args.kiln_ok
        for n in names:
            log(f"\n== {n} {'x'.join(map(str, CASES[n]['shape']))}  [{budget.elapsed():.0f} s]")
            try:
                stage_prepare_and_eager(n, CASES[n], args, R, log, budget, "eager" in args.stage_set, do_kiln)
            except Interrupted:
                raise
            except Exception as e:
                R["cases"][n]["notes"].append(f"prepare failed: {type(e).__name__}: {str(e)[:300]}")
                log(f"  prepare FAILED: {type(e).__name__}: {str(e)[:300]}")
                log.raw(traceback.format_exc())
                try:
                    empty_cache()
                except Exception:
                    pass
            write_outputs(names, R, args, None)
        if do_kiln:
            for n in names:
                log(f"\n== kiln: {n}  [{budget.elapsed():.0f} s]")
                try:
                    stage_kiln(n, CASES[n], args, R, log, budget)
                except Interrupted:
                    raise
                except Exception as e:
                    R["cases"][n]["notes"].append(f"kiln stage failed: {type(e).__name__}: {str(e)[:300]}")
                    log(f"  kiln stage FAILED: {type(e).__name__}: {str(e)[:300]}")
                    log.raw(traceback.format_exc())
                write_outputs(names, R, args, None)
        if "compile" in args.stage_set:
            log(f"\n== torch.compile  [{budget.elapsed():.0f} s]")
            try:
                stage_compile(names, args, R, log, budget)
            except Interrupted:
                raise
            except Exception as e:
                log(f"  torch.compile stage FAILED: {type(e).__name__}: {str(e)[:300]}")
                log.raw(traceback.format_exc())
    except Interrupted as e:
        log(f"\n[bench] interrupted ({e}): tables from what finished")
    except Exception as e:
        log(f"\n[bench] unexpected error: {type(e).__name__}: {e}")
        log.raw(traceback.format_exc())
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        R["meta"]["total_s"] = round(budget.elapsed(), 1)
        try:
            sh, sr = speed_table(names, R)
            ah, ar = acc_table(names, R)
            m = R["meta"]
            final = "\n".join([
                f"== kiln bench {m.get('date_utc')}  {m.get('gpu', '?')}  commit {m.get('commit')}  "
                f"{'quick' if args.quick else 'full'}, {m['total_s']} s",
                "Speed: medians in ms (PyTorch: CUDA events; kiln: `kiln exec` GPU compute). FAIL/skip: see bench.log",
                fmt_table(sh, sr), "",
                "Accuracy vs PyTorch fp32: mean rel = sum|a-b|/sum|b|; elem mean rel = mean of |a-b|/|b|",
                fmt_table(ah, ar)])
        except Exception as e:
            final = f"[bench] cannot format tables: {type(e).__name__}: {e}"
        write_outputs(names, R, args, final)
        log("\n" + final)
        log(f"[bench] results: {args.out}/results.json, table.txt, results.md, bench.log, kiln/*.log, compile.log")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
