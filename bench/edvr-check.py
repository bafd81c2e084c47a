#!/usr/bin/env python3
"""EDVR-M end-to-end check (issue 4, point 6). Runs ON THE GPU MACHINE from the repository root;
not a test, not the benchmark (bench/bench.py --cases edvr-m times it).

1. The fixture ../shared/sr-fixtures/edvr_tiny (model.onnx, test_data_set_0; carried as
   .device/shared/sr-fixtures/edvr_tiny): `kiln run` (CPU reference) against its output_0.pb,
   and `kiln compare` (GPU engine) fp32 and fp16 against it.
2. EDVR-M (bench/models.py) with seeded random weights at a small size (default 1x5x3x64x64) and
   at the full size 1x5x3x180x320: PyTorch fp32 reference (TF32 off), ONNX export at opset 19
   with DeformConv (bench.py's export_onnx: the exporter path that worked is printed), the op
   histogram, onnxruntime (CPU) against PyTorch, `kiln run` (CPU reference) against PyTorch at
   the small size only (the full size is ~1 TFLOP on the CPU reference), and on the GPU
   `kiln build` + `kiln exec` (a short timing) + `kiln compare --loadRefOutputs` for fp32 and
   fp16 at both sizes.

Every step is recorded, failures included, and the rest goes on; a table comes last. Logs and
results.json go to $OUT (default bench-out/edvr-check); ONNX, engines and .npy to --workdir.

Usage:  LD_LIBRARY_PATH=.device/bin timeout 590 python3 bench/edvr-check.py [--kiln PATH] [--small 64x64]
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import bench  # noqa: E402  (the harness: export_onnx, accuracy, parse_compare, parse_exec, find_kiln)

FULL_HW = (180, 320)
TOL = {"fp32": ("--noTF32", 1e-5), "fp16": ("--fp16", 1e-3)}  # kiln flag, atol = rtol (mean statistic)
ACC_LIMIT = {"fp32": 1e-5, "fp16": 1e-3}  # the mean relative error limits vs PyTorch fp32


class Check:
    """Rows of the final table and everything in results.json."""

    def __init__(self, args):
        self.args = args
        self.t0 = time.monotonic()
        os.makedirs(args.out, exist_ok=True)
        os.makedirs(args.workdir, exist_ok=True)
        self.log = bench.Log(os.path.join(args.out, "edvr-check.log"))
        self.rows = []
        self.res = dict(meta={}, steps={})

    def left(self):
        return self.args.budget - (time.monotonic() - self.t0)

    def row(self, what, status, rel_l1=None, abs_max=None, psnr=None, ms=None, note=""):
        self.rows.append([what, status, bench.fsci(rel_l1), bench.fsci(abs_max),
                          f"{psnr:.2f}" if isinstance(psnr, float) else "-",
                          bench.fms(ms) if ms is not None else "-", note[:90]])
        self.res["steps"][what] = dict(status=status, rel_l1=rel_l1, abs_max=abs_max, psnr=psnr, ms=ms, note=note)
        self.log(f"  -> {what}: {status}" + (f", rel_l1 {rel_l1:.3g}" if rel_l1 is not None else "")
                 + (f", PSNR {psnr:.2f} dB" if isinstance(psnr, float) else "")
                 + (f", {ms:.3f} ms" if ms is not None else "") + (f"  ({note[:200]})" if note else ""))

    def kiln(self, args, tag, timeout):
        """Runs the kiln CLI; (rc, output)."""
        timeout = max(5, min(timeout, self.left() - 5))
        env = dict(os.environ)
        kdir = os.path.dirname(os.path.abspath(self.args.kiln))
        env["LD_LIBRARY_PATH"] = kdir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        cmd = [self.args.kiln] + args
        t0 = time.time()
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                               timeout=timeout, cwd=ROOT, env=env)
            rc, text = p.returncode, p.stdout or ""
        except subprocess.TimeoutExpired as e:
            out = e.stdout or b""
            rc = "timeout"
            text = (out.decode("utf-8", "replace") if isinstance(out, bytes) else out) + f"\n[edvr-check] TIMEOUT after {timeout:.0f} s"
        except OSError as e:
            rc, text = "oserror", f"[edvr-check] cannot run: {e}"
        secs = time.time() - t0
        with open(os.path.join(self.args.out, f"kiln_{tag}.log"), "w") as f:
            f.write("$ " + " ".join(shlex.quote(a) for a in cmd) + "\n" + text + f"\n[rc={rc}, {secs:.1f} s]\n")
        self.log.raw(f"$ {' '.join(shlex.quote(a) for a in cmd)}\n[rc={rc}, {secs:.1f} s]\n{text[-4000:]}")
        return rc, text, secs


def last_error(text):
    """The line of a tool's output that says best why it failed."""
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    for pick in (lambda l: l.startswith("kiln:") or "TIMEOUT" in l, lambda l: "FAILED" in l or "rror" in l):
        errs = [l for l in lines if pick(l)]
        if errs:
            return errs[-1][:200]
    return (lines or ["(no output)"])[-1][:200]


def load_pb(path):
    import onnx
    from onnx import numpy_helper

    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


# --- the fixture -------------------------------------------------------------------------------------

def find_fixture(given):
    cands = [given] if given else []
    cands += [os.path.join(ROOT, ".device/shared/sr-fixtures/edvr_tiny"), os.path.join(ROOT, "shared/sr-fixtures/edvr_tiny"),
              os.path.join(ROOT, "../shared/sr-fixtures/edvr_tiny"), "/work/shared/sr-fixtures/edvr_tiny"]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "model.onnx")):
            return os.path.abspath(c)
    return None


def check_fixture(ck):
    import numpy as np
    import torch

    fx = find_fixture(ck.args.fixture)
    if not fx:
        ck.row("fixture edvr_tiny", "SKIP", note="not found (.device/shared/sr-fixtures/edvr_tiny: run bench/prepare-device.sh)")
        return
    ck.log(f"\n== fixture {fx}")
    model, tds = os.path.join(fx, "model.onnx"), os.path.join(fx, "test_data_set_0")
    try:
        info = bench._onnx_info(model)
        ck.log(f"  opset {info.get('opset')}, {info.get('nodes')} nodes, ops {info.get('ops')}")
        ck.res["fixture_onnx"] = info
    except Exception as e:
        ck.log(f"  cannot inspect: {e}")
    # CPU reference
    odir = os.path.join(ck.args.workdir, "fixture_out")
    os.makedirs(odir, exist_ok=True)
    rc, text, secs = ck.kiln(["run", model, "--inputs", tds, "--save-outputs", odir], "fixture_run", 300)
    if rc == 0:
        try:
            y = torch.from_numpy(np.array(load_pb(os.path.join(tds, "output_0.pb")), dtype=np.float32))
            k = torch.from_numpy(np.load(os.path.join(odir, "output_0.npy")))
            a = bench.accuracy(k, y, True)
            ok = a.get("rel_l1", 1) <= ACC_LIMIT["fp32"] and not a.get("nonfinite")
            ck.row("fixture: kiln run (CPU ref)", "ok" if ok else "MISMATCH", a.get("rel_l1"), a.get("abs_max"), a.get("psnr"),
                   note=f"{secs:.1f} s")
        except Exception as e:
            ck.row("fixture: kiln run (CPU ref)", "ERROR", note=f"{type(e).__name__}: {e}")
    else:
        ck.row("fixture: kiln run (CPU ref)", "FAIL", note=last_error(text))
    for prec in ("fp32", "fp16"):
        flag, tol = TOL[prec]
        rc, text, secs = ck.kiln(["compare", model, flag, f"--loadInputs={tds}", f"--loadRefOutputs={tds}",
                                  "--check-error-stat=mean", f"--atol={tol}", f"--rtol={tol}"], f"fixture_compare_{prec}", 300)
        cm = bench.parse_compare(text)
        st = cm.get("verdict") or ("FAIL" if rc else "?")
        ck.row(f"fixture: kiln compare {prec}", st, cm.get("rel_l1"), cm.get("abs_max"), cm.get("psnr"),
               note="" if "rel_l1" in cm else last_error(text))


# --- EDVR-M at one size ------------------------------------------------------------------------------

def ort_child(onnx_path, in_npy, out_npy, timeout, ck):
    """onnxruntime CPU in a child process (a time limit that can end it)."""
    code = ("import numpy as np, onnxruntime as ort, sys\n"
            "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
            "y = s.run(None, {s.get_inputs()[0].name: np.load(sys.argv[2])})[0]\n"
            "np.save(sys.argv[3], y)\n")
    timeout = max(5, min(timeout, ck.left() - 5))
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, "-c", code, onnx_path, in_npy, out_npy], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace", timeout=timeout)
        return p.returncode, p.stdout, time.time() - t0
    except subprocess.TimeoutExpired:
        return "timeout", f"onnxruntime: timed out after {timeout:.0f} s", time.time() - t0


def check_size(ck, label, h, w, with_cpu_ref):
    import numpy as np
    import torch
    from models import count_flops, make_model

    args = ck.args
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    wd = os.path.join(args.workdir, label)
    os.makedirs(os.path.join(wd, "ref"), exist_ok=True)
    shape = (1, 5, 3, h, w)
    sh = "x".join(map(str, shape))
    ck.log(f"\n== EDVR-M {label} {sh}  [{args.budget - ck.left():.0f} s]")
    bench.set_tf32(False)
    model = make_model("edvr-m", dev, seed=args.seed)
    g = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    x = 0.001 + 0.999 * torch.rand(shape, generator=g)
    xg = x.to(dev)
    with torch.inference_mode():
        ref = model(xg).float()
        flops, per = count_flops(model, xg)
    if dev == "cuda":
        torch.cuda.synchronize()
    fin = bool(torch.isfinite(ref).all())
    ck.log(f"  PyTorch fp32 ({dev}): output {tuple(ref.shape)} mean {ref.mean().item():.4g} std {ref.std().item():.4g} "
           f"range [{ref.min().item():.4g}, {ref.max().item():.4g}]{'' if fin else ' NOT FINITE'}; "
           f"{flops / 1e9:.1f} GFLOP ({ {k: round(v / 1e9, 1) for k, v in per.items()} })")
    ck.res[f"{label}_flops"] = flops
    in_npy, in16_npy = os.path.join(wd, "in.npy"), os.path.join(wd, "in16.npy")
    np.save(in_npy, np.ascontiguousarray(x.numpy().astype(np.float32)))
    np.save(in16_npy, np.ascontiguousarray(x.numpy().astype(np.float16)))
    np.save(os.path.join(wd, "ref", "output_0.npy"), np.ascontiguousarray(ref.cpu().numpy()))
    onnx_path = os.path.join(wd, "model.onnx")
    try:
        t0 = time.time()
        info = bench.export_onnx(model, xg, onnx_path, False, ck.log, opset=19, deform=True,
                                 deform_paths=bench.DEFORM_EXPORT_PATHS[args.deform_export])
        ck.res[f"{label}_export"] = info
        ck.log(f"  ONNX: exporter path '{info.get('exporter')}', opset {info.get('opset')}, {info.get('nodes')} nodes, "
               f"{info['bytes'] / 1e6:.1f} MB, {time.time() - t0:.1f} s")
        ck.log("  op histogram: " + ", ".join(f"{k} {v}" for k, v in (info.get("ops") or {}).items()))
        ck.row(f"{label}: ONNX export", "ok", note=f"path {info.get('exporter')}, {info.get('deformconv_nodes')} DeformConv")
    except Exception as e:
        ck.res[f"{label}_export"] = dict(error=f"{type(e).__name__}: {e}")
        ck.row(f"{label}: ONNX export", "FAIL", note=f"{type(e).__name__}: {str(e)[:200]}")
        return
    del model
    if dev == "cuda":
        torch.cuda.empty_cache()
    # onnxruntime
    if ck.left() > 60:
        ort_out = os.path.join(wd, "ort_out.npy")
        rc, text, secs = ort_child(onnx_path, in_npy, ort_out, args.ort_timeout, ck)
        if rc == 0:
            a = bench.accuracy(torch.from_numpy(np.load(ort_out)), ref.cpu(), True)
            ck.row(f"{label}: onnxruntime CPU", "ok" if a.get("rel_l1", 1) <= 1e-4 else "MISMATCH", a.get("rel_l1"),
                   a.get("abs_max"), a.get("psnr"), note=f"{secs:.1f} s")
        else:
            ck.row(f"{label}: onnxruntime CPU", "FAIL", note=last_error(text))
    else:
        ck.row(f"{label}: onnxruntime CPU", "SKIP", note="time budget")
    # kiln CPU reference
    if with_cpu_ref:
        odir = os.path.join(wd, "kiln_run")
        os.makedirs(odir, exist_ok=True)
        rc, text, secs = ck.kiln(["run", onnx_path, "--input", f"input={in_npy}", "--save-outputs", odir],
                                 f"{label}_run", args.run_timeout)
        if rc == 0:
            a = bench.accuracy(torch.from_numpy(np.load(os.path.join(odir, "output_0.npy"))), ref.cpu(), True)
            ok = a.get("rel_l1", 1) <= ACC_LIMIT["fp32"] and not a.get("nonfinite")
            ck.row(f"{label}: kiln run (CPU ref)", "ok" if ok else "MISMATCH", a.get("rel_l1"), a.get("abs_max"),
                   a.get("psnr"), note=f"{secs:.1f} s")
        else:
            ck.row(f"{label}: kiln run (CPU ref)", "FAIL", note=last_error(text))
    # kiln on the GPU: build, compare against PyTorch fp32, then a short timing
    for prec in args.precisions:
        if ck.left() < 40:
            ck.row(f"{label}: kiln {prec}", "SKIP", note="time budget")
            continue
        flag, tol = TOL[prec]
        engine = os.path.join(wd, f"{prec}.kiln")
        if os.path.exists(engine):
            os.remove(engine)
        rc, text, secs = ck.kiln(["build", onnx_path, f"--saveEngine={engine}", f"--shapes=input:{sh}", flag,
                                  f"--timingCacheFile={os.path.join(args.workdir, 'timing.cache')}"],
                                 f"{label}_build_{prec}", args.build_timeout)
        built = rc == 0 and os.path.exists(engine)
        if not built:
            ck.row(f"{label}: kiln build {prec}", "FAIL", note=last_error(text))
        if ck.left() < 20:
            ck.row(f"{label}: kiln {prec} vs PyTorch fp32", "SKIP", note="time budget")
            continue
        src = [f"--engine={engine}"] if built else [flag]  # not built: compare builds, so its own error shows

        def compare(inp):
            return ck.kiln(["compare", onnx_path] + src + [f"--loadInputs=input:{inp}",
                           f"--loadRefOutputs={os.path.join(wd, 'ref')}", "--check-error-stat=mean",
                           f"--atol={tol}", f"--rtol={tol}"], f"{label}_compare_{prec}", args.compare_timeout)

        rc3, text3, secs3 = compare(in_npy)
        if rc3 not in (0, 1) and re.search(r"is float16, the file holds float32", text3):
            rc3, text3, secs3 = compare(in16_npy)  # an engine with fp16 I/O
        cm = bench.parse_compare(text3)
        # timing: only when one compare (load, one run, statistics) was quick; an engine that runs
        # DeformConv on the CPU would take minutes for 30 iterations at the full size
        ms, exec_note = None, ""
        if built and rc3 in (0, 1) and secs3 < 60 and ck.left() > 30:
            times = os.path.join(wd, f"{prec}_times.json")
            rc2, text2, _ = ck.kiln(["exec", f"--loadEngine={engine}", f"--shapes=input:{sh}", "--iterations=30",
                                     "--warmUp=200", "--duration=0", "--noDataTransfers", f"--exportTimes={times}"],
                                    f"{label}_exec_{prec}", 90)
            e = bench.parse_exec(text2, times)
            ms = e.get("median") if rc2 == 0 else None
            if rc2 != 0:
                exec_note = f"; exec failed: {last_error(text2)}"
        elif built:
            exec_note = f"; exec not run (compare rc {rc3}, {secs3:.0f} s)"
        st = cm.get("verdict") or ("FAIL" if rc3 else "?")
        note = "" if "rel_l1" in cm else last_error(text3)
        if "rel_l1" in cm:
            lim = ACC_LIMIT[prec]
            note = f"issue limit {lim:g}: {'met' if cm['rel_l1'] <= lim else 'MISSED'}"
            if prec == "fp16" and cm.get("psnr") is not None:
                note += f"; PSNR >= 45: {'met' if cm['psnr'] >= 45 else 'MISSED'}"
        ck.row(f"{label}: kiln {prec} vs PyTorch fp32", st, cm.get("rel_l1"), cm.get("abs_max"), cm.get("psnr"), ms,
               note + exec_note)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="EDVR-M end-to-end check on the GPU machine (issue 4)")
    ap.add_argument("--kiln", default=".device/bin/kiln", help="kiln CLI (default .device/bin/kiln)")
    ap.add_argument("--small", default="64x64", help="H x W of the small size (multiples of 4; default 64x64)")
    ap.add_argument("--sizes", default="small,full", help="any of small,full (default both)")
    ap.add_argument("--precisions", default="fp32,fp16", help="kiln precisions on the GPU (default fp32,fp16)")
    ap.add_argument("--no-fixture", action="store_true", help="skip the edvr_tiny fixture")
    ap.add_argument("--fixture", default=None, help="edvr_tiny folder (default: .device/shared/sr-fixtures/edvr_tiny, ...)")
    ap.add_argument("--deform-export", choices=tuple(bench.DEFORM_EXPORT_PATHS), default="auto",
                    help="exporter path (see bench.py --help)")
    ap.add_argument("--budget", type=int, default=560, help="seconds for everything (default 560)")
    ap.add_argument("--build-timeout", type=int, default=240)
    ap.add_argument("--compare-timeout", type=int, default=180)
    ap.add_argument("--run-timeout", type=int, default=240, help="seconds for `kiln run` (CPU reference) at the small size")
    ap.add_argument("--ort-timeout", type=int, default=120, help="seconds for onnxruntime per size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="/tmp/kiln-edvr-check")
    ap.add_argument("--out", default=None, help="logs and results.json (default $OUT, else bench-out/edvr-check)")
    a = ap.parse_args(argv)
    m = re.fullmatch(r"(\d+)x(\d+)", a.small)
    if not m or int(m.group(1)) % 4 or int(m.group(2)) % 4 or int(m.group(1)) < 8 or int(m.group(2)) < 8:
        ap.error("--small must be HxW, multiples of 4, at least 8x8")
    a.small_hw = (int(m.group(1)), int(m.group(2)))
    a.size_set = {s.strip() for s in a.sizes.split(",") if s.strip()}
    if a.size_set - {"small", "full"}:
        ap.error("--sizes: small, full")
    a.precisions = [p.strip() for p in a.precisions.split(",") if p.strip()]
    if set(a.precisions) - set(TOL):
        ap.error("--precisions: fp32, fp16")
    a.kiln = bench.find_kiln(a.kiln)
    a.workdir = os.path.abspath(a.workdir)
    a.out = os.path.abspath(a.out or (os.path.join(os.environ["OUT"], "edvr-check") if os.environ.get("OUT")
                                      else os.path.join(ROOT, "bench-out", "edvr-check")))
    return a


def main(argv):
    args = parse_args(argv)
    ck = Check(args)
    log = ck.log
    try:
        import torch

        ck.res["meta"] = dict(torch=torch.__version__, cuda=torch.cuda.is_available(), kiln=args.kiln,
                              gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
        for mod in ("torchvision", "onnx", "onnxruntime", "onnxscript"):
            try:
                ck.res["meta"][mod] = __import__(mod).__version__
            except Exception as e:
                ck.res["meta"][mod] = f"missing ({type(e).__name__})"
        log(f"[edvr-check] {ck.res['meta']}")
        if not (os.path.isfile(args.kiln) and os.access(args.kiln, os.X_OK)):
            log(f"[edvr-check] kiln CLI not found at {args.kiln}: the kiln steps will fail (give --kiln)")
        torch.backends.cudnn.benchmark = False
        if not args.no_fixture:
            try:
                check_fixture(ck)
            except Exception as e:
                ck.row("fixture edvr_tiny", "ERROR", note=f"{type(e).__name__}: {e}")
                log.raw(traceback.format_exc())
        for label, hw, cpu_ref in (("small", args.small_hw, True), ("full", FULL_HW, False)):
            if label not in args.size_set:
                continue
            if ck.left() < 60:
                ck.row(f"{label}: everything", "SKIP", note="time budget")
                continue
            try:
                check_size(ck, label, hw[0], hw[1], cpu_ref)
            except Exception as e:
                ck.row(f"{label}: (unexpected)", "ERROR", note=f"{type(e).__name__}: {str(e)[:200]}")
                log.raw(traceback.format_exc())
    except KeyboardInterrupt:
        log("[edvr-check] interrupted")
    finally:
        hdr = ["step", "status", "mean rel", "max abs", "PSNR dB", "ms", "note"]
        w = [max(len(str(r[i])) for r in [hdr] + ck.rows) for i in range(len(hdr))]
        fmt = lambda r: "  ".join(str(v).ljust(w[i]) if i in (0, 1, 6) else str(v).rjust(w[i])
                                  for i, v in enumerate(r)).rstrip()
        table = "\n".join([fmt(hdr), "  ".join("-" * x for x in w)] + [fmt(r) for r in ck.rows])
        log("\n== EDVR-M check (mean rel = sum|a-b|/sum|b| against the reference named in the step; "
            "ms = kiln exec GPU compute median)\n" + table)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(ck.res, f, indent=1, default=str)
        log(f"[edvr-check] {time.monotonic() - ck.t0:.0f} s; logs and results.json in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
