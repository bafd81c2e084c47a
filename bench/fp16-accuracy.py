"""Runs ON THE GPU MACHINE: which layers, kept in fp32, bring an fp16 engine's error under the
issue's 1e-3 (mean relative error sum|a-b|/sum|b| vs the fp32 CPU reference). Not a test.
Usage: python3 bench/fp16-accuracy.py MODEL.onnx SHAPE [--kiln PATH]
Builds the fp16 engine, reads its layer list (kiln inspect), then runs `kiln compare` with
variants of --layerPrecisions: none, the last conv, the last two/four convs, the first conv,
first + last, every non-conv layer; prints one line per variant."""
import re
import subprocess
import sys


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


def main():
    onnx, shape = sys.argv[1], sys.argv[2]
    kiln = sys.argv[sys.argv.index("--kiln") + 1] if "--kiln" in sys.argv else ".device/bin/kiln"
    name = [l for l in run([kiln, "inspect", onnx])[1].splitlines() if l.startswith("  ")][0].split(":")[0].strip()
    shp = f"--shapes={name}:{shape}"
    eng = "/tmp/fp16acc.kiln"
    rc, out = run([kiln, "build", onnx, "--fp16", shp, f"--saveEngine={eng}"])
    if rc:
        print("build failed:", out[-800:])
        return
    layers = []
    for l in run([kiln, "inspect", eng])[1].splitlines():
        m = re.match(r"  (\S+)\s+(\S+)\s+(gpu|cpu)\s+(fp16|fp32)", l)
        if m:
            layers.append((m.group(1), m.group(2), m.group(4)))
    convs = [n for n, op, p in layers if op.startswith("Conv") or "conv" in op.lower()]
    other = [n for n, op, p in layers if n not in convs]
    variants = [("none", []), ("last conv", convs[-1:]), ("last 2 convs", convs[-2:]), ("last 4 convs", convs[-4:]),
                ("first conv", convs[:1]), ("first+last conv", convs[:1] + convs[-1:]), ("non-conv layers", other),
                ("first+last+non-conv", convs[:1] + convs[-1:] + other)]
    print(f"{onnx} {shape}: {len(layers)} layers, {len(convs)} conv layers; last conv {convs[-1] if convs else '-'}")
    for label, pins in variants:
        cmd = [kiln, "compare", onnx, "--fp16", shp, "--check-error-stat=mean", "--atol=1", "--rtol=1"]
        if pins:
            cmd.append("--layerPrecisions=" + ",".join(f"{n}:fp32" for n in pins))
        rc, out = run(cmd)
        m = re.search(r"sum\|a-b\|/sum\|b\|: (\S+)", out)
        p = re.search(r"PSNR: (\S+)", out)
        print(f"  {label:22s} pins {len(pins):3d}  mean rel {m.group(1) if m else '?':10s} PSNR {p.group(1) if p else '?'}"
              + ("" if m else "  " + out.strip().splitlines()[-1][:200] if out.strip() else ""))


if __name__ == "__main__":
    main()
