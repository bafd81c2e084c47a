"""Runs ON THE GPU MACHINE: per-layer profiles of kiln engines for the bench models, to see
where the time goes (not a benchmark; the per-layer run syncs after every layer).
Usage: python3 bench/device-profile.py CASE:PREC[,CASE:PREC...] [--kiln PATH]
CASE is a bench.py case (animevideov3, general-x4v3, rrdbnet-x4plus, resnet50-b64, resnet50-b1),
PREC fp16|fp32|tf32. Logs under $OUT/profile/; prints the top layers and per-op-type totals."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

FLAGS = {"fp16": ["--fp16"], "fp32": ["--noTF32"], "tf32": []}


def main():
    import torch
    from models import make_model

    specs = [s.split(":") for s in sys.argv[1].split(",")]
    kiln = sys.argv[sys.argv.index("--kiln") + 1] if "--kiln" in sys.argv else ".device/bin/kiln"
    out = "/tmp/kiln-profile/logs"  # many files: $OUT gets one summary log only
    work = "/tmp/kiln-profile"
    os.makedirs(out, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    log = lambda *a, **k: None  # noqa: E731
    log.raw = lambda *a, **k: None
    exported = {}
    for case, prec in specs:
        c = bench.CASES[case]
        onnx_path = os.path.join(work, c["model"] + ("_sr" if c["sr"] else "") + ".onnx")
        if onnx_path not in exported:
            model = make_model(c["model"], "cuda", seed=0).float().eval()
            x = torch.rand(c["shape"], device="cuda")
            bench.export_onnx(model, x, onnx_path, c.get("dynamic_hw", c["sr"]), log, opset=c.get("opset", 17),
                              deform=c.get("deform", False))
            exported[onnx_path] = True
        shape = "x".join(map(str, c["shape"]))
        base = os.path.join(out, f"{case}_{prec}")
        eng = base + ".kiln"
        cmd = [kiln, "build", onnx_path, f"--saveEngine={eng}", f"--shapes=input:{shape}", "--verbose"] + FLAGS[prec]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=500)
        open(base + "_build.log", "w").write(r.stdout + r.stderr)
        if r.returncode:
            print(f"{case} {prec}: build failed\n{(r.stdout + r.stderr)[-1500:]}")
            continue
        r = subprocess.run([kiln, "exec", f"--loadEngine={eng}", f"--shapes=input:{shape}", "--noDataTransfers",
                            "--iterations=300", "--duration=0", "--warmUp=300"], capture_output=True, text=True, timeout=300)
        open(base + "_exec.log", "w").write(r.stdout + r.stderr)
        gpu = [l for l in (r.stdout + r.stderr).splitlines() if "GPU Compute Time" in l]
        r = subprocess.run([kiln, "exec", f"--loadEngine={eng}", f"--shapes=input:{shape}", "--noDataTransfers",
                            "--iterations=100", "--duration=0", "--dumpProfile", f"--exportProfile={base}_profile.json"],
                           capture_output=True, text=True, timeout=300)
        open(base + "_profile.log", "w").write(r.stdout + r.stderr)
        print(f"==== {case} {prec}: {gpu[0].strip() if gpu else 'no GPU compute line'}")
        tac = [l for l in open(base + "_build.log") if "tactic" in l]
        with open(os.path.join(os.environ.get("OUT", "/tmp/out"), "profile-summary.log"), "a") as f:
            f.write(f"==== {case} {prec}\n" + "".join(tac) + (r.stdout + r.stderr) + "\n")
        try:
            prof = json.load(open(base + "_profile.json"))
        except Exception as e:  # noqa: BLE001
            print("  no profile:", e, (r.stdout + r.stderr)[-800:])
            continue
        layers = prof if isinstance(prof, list) else prof.get("layers", prof)
        rows = []
        for L in layers:
            if not isinstance(L, dict) or "name" not in L:
                continue
            t = L.get("medianMs", L.get("averageMs", 0.0))
            # layer names are the fused ONNX node names: the first one's last path part is its op
            first = L["name"].split(",")[0]
            op = first.rsplit("/", 1)[-1].split("_")[0] if "/" in first else first
            rows.append((t, L["name"], op, "", ""))
        tot = sum(r[0] for r in rows)
        by = {}
        for t, n, op, *_ in rows:
            by[op] = by.get(op, 0) + t
        print(f"  layers {len(rows)}, sum {tot:.3f} ms; by op: " +
              ", ".join(f"{k} {v:.3f}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:8]))
        for t, n, op, tac, p in sorted(rows, reverse=True)[:12]:
            print(f"  {t:8.4f} ms  {op:14s} {p:5s} {str(tac)[:40]:40s} {n[:60]}")


if __name__ == "__main__":
    main()
