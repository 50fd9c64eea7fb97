#!/usr/bin/python3
"""The main job of dlasim on Fashion-MNIST, from training to sign-off (run by scripts/demo).

1. Trains a small CNN in float on Fashion-MNIST (Debian's dataset-fashion-mnist).
2. Fine-tunes it with bit-exact QAT (dlasim.prepare_qat) twice: int8, and int4 with int8
   first and last layers; the input is the image's u8 pixels themselves (frac 8).
   The QAT fine-tuning starts from the trained float model and sees --qat-images images.
3. Exports each model, compiles it with `dla compile net.dla.pt` (for the hardware it was
   trained for), and runs the whole test set on the emulator through dlasim.Device.
4. Prints the accuracy of the float model, of the QAT model's eval forward and of the
   emulator, and checks that the last two agree on every image, integer for integer.
5. Signs off an image on the emulator, the cycle model and (in builds with it) the RTL
   engine, layer by layer against the export's integer replay, with each layer's SQNR
   against the float model (dlasim.signoff), and writes the report pages.

Usage: scripts/demo [--quick] [--out DIR] [--threads N]
"""

import argparse
import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "qat_bridge" / "python"))
sys.dont_write_bytecode = True
import dlasim  # noqa: E402
from dlasim import datasets  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # progress bars are a nicety; python3-tqdm provides them
    def tqdm(it, **_):
        return it

INPUT = {"dtype": "u8", "frac": 8}  # the u8 pixels are the input integers
CONFIGS = [("int8", "int8 (w8a8)"), ("int4", "int4 inner, int8 first/last")]


class FashionCNN(nn.Module):
    """Three conv-BN-ReLU layers with max pools, a residual conv and a linear classifier."""

    def __init__(self, width=16, classes=10):
        super().__init__()
        w = width
        block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),  # noqa: E731
                                                nn.BatchNorm2d(cout))
        self.conv1, self.conv2, self.conv3, self.conv4 = block(1, w), block(w, 2 * w), block(2 * w, 4 * w), \
            block(4 * w, 4 * w)
        self.fc = nn.Linear(4 * w * 7 * 7, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        x = F.relu(self.conv4(x) + x)
        return self.fc(torch.flatten(x, 1))


def progress(it, desc):
    """A progress bar on a terminal; in a log, nothing per step (callers print a line per phase)."""
    return tqdm(it, desc=desc, unit="batch", leave=False, file=sys.stdout, disable=not sys.stdout.isatty())


def train(model, images, labels, epochs, lr, batch, what):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(images.shape[0], generator=gen)
        bar = progress(range(0, images.shape[0] - batch + 1, batch), "%s epoch %d/%d" % (what, epoch + 1, epochs))
        losses = []
        for i in bar:
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(datasets.u8_to_real(images[idx])), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss="%.3f" % losses[-1])
        print("  %s epoch %d/%d: mean loss %.3f, %.0f s" % (what, epoch + 1, epochs, sum(losses) / max(len(losses), 1),
                                                           time.perf_counter() - t0), flush=True)


@torch.no_grad()
def logits(model, images, batch=500):
    model.eval()
    return torch.cat([model(datasets.u8_to_real(images[i:i + batch])) for i in range(0, images.shape[0], batch)])


def accuracy(scores, labels):
    return 100.0 * (scores.argmax(1) == labels).float().mean().item()


def dla(*args):
    tool = os.environ.get("DLA_TOOL") or ROOT / "build" / "ci" / "sim" / "dla"
    r = subprocess.run([str(tool), *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("demo: dla %s failed: %s" % (" ".join(map(str, args)), r.stderr.strip()))
    return r.stdout


def engines_for(program):
    """emu and cycle, and rtl in builds with the RTL engine (the op library says)."""
    try:
        dlasim.Device(program, engine="rtl")
        return ("emu", "cycle", "rtl")
    except RuntimeError:
        return ("emu", "cycle")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smaller run (subsets, one short epoch each), under 2 minutes")
    ap.add_argument("--out", default=str(ROOT / "build" / "demo"), help="where exports, programs and reports go")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: one per core)")
    ap.add_argument("--qat-images", type=int, default=15000,
                    help="training images of each QAT fine-tuning (from the trained float model, a part of an "
                         "epoch is enough)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stamp = lambda: "[%5.1fs]" % (time.perf_counter() - start)  # noqa: E731

    xtr, ytr = datasets.fashion_mnist("train")
    xte, yte = datasets.fashion_mnist("test")
    if args.quick:
        xtr, ytr, xte, yte = xtr[:4000], ytr[:4000], xte[:1000], yte[:1000]
    width, float_epochs, qat_epochs = (8, 1, 1) if args.quick else (16, 2, 1)
    print("%s Fashion-MNIST: %d training and %d test images; %d torch threads" % (stamp(), xtr.shape[0], xte.shape[0],
                                                                                  torch.get_num_threads()))

    float_model = FashionCNN(width)
    train(float_model, xtr, ytr, float_epochs, 2e-3, 128, "float")
    float_acc = accuracy(logits(float_model, xte), yte)
    print("%s float model: test accuracy %.2f%%" % (stamp(), float_acc))

    results = []
    example = datasets.u8_to_real(xte[:1])  # programs run one image at a time
    for name, label in CONFIGS:
        plan = dlasim.PrecisionPlan.preset(name, input=INPUT)
        prepared = dlasim.prepare_qat(copy.deepcopy(float_model), (example,), plan=plan)
        n = min(args.qat_images, xtr.shape[0])
        train(prepared, xtr[:n], ytr[:n], qat_epochs, 5e-4, 128, "QAT %s" % name)
        prepared.eval()
        export = dlasim.export(prepared, (example,), out / ("%s.dla.pt" % name))
        program = out / ("%s.dlab" % name)
        dla("compile", export, "-o", program)
        ex = dlasim.load_export(export)
        (out_name,) = ex.graph["outputs"]
        frac = ex.node(out_name)["frac"]
        eval_q = dlasim.to_integers(logits(prepared, xte), frac)
        dev = dlasim.Device(program, engine="emu", export=ex)
        emu_q = torch.cat([dev.run(xte[i:i + 250]) for i in progress(range(0, xte.shape[0], 250), "emulator %s" % name)])
        same = int((emu_q == eval_q).all(dim=1).sum())
        qat_acc, emu_acc = accuracy(eval_q, yte), accuracy(emu_q, yte)
        print("%s %s: QAT eval forward %.2f%%, emulator %.2f%%; %d of %d images integer-identical"
              % (stamp(), label, qat_acc, emu_acc, same, xte.shape[0]))
        report = dlasim.signoff(export, program, (xte[:1],), engines=engines_for(program), model=prepared)
        print(report.table())
        page = report.write(out / "report" / name)
        results.append((label, qat_acc, emu_acc, same, report.ok, page))

    print("\n%s summary (float model %.2f%%)" % (stamp(), float_acc))
    print("  %-30s %10s %10s %18s %9s" % ("QAT config", "QAT eval", "emulator", "images identical", "sign-off"))
    ok = True
    for label, qat_acc, emu_acc, same, signed, _ in results:
        print("  %-30s %9.2f%% %9.2f%% %12d/%-5d %9s" % (label, qat_acc, emu_acc, same, xte.shape[0],
                                                         "PASS" if signed else "FAIL"))
        ok = ok and signed and same == xte.shape[0]
    print("reports: %s" % "  ".join(str(r[-1]) for r in results))
    print("demo: %s in %.0f s" % ("PASS" if ok else "FAIL", time.perf_counter() - start))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
