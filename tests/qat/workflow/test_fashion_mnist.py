"""Real data: a small CNN trained with bit-exact QAT on Fashion-MNIST (Debian's
dataset-fashion-mnist). The short CI version: a few hundred images, one epoch, accuracy
well above chance (10%), no non-finite gradient anywhere, and the export's integer replay
classifies the test images exactly as the eval forward does. scripts/fashion_mnist_qat
runs the full comparison."""

import pytest
import torch

import dlasim
import wf_models as M
from dlasim import datasets

if not datasets.available():
    raise RuntimeError("Fashion-MNIST is missing: scripts/setup installs dataset-fashion-mnist")

TRAIN, TEST, BATCH = 640, 500, 16


@pytest.fixture(scope="module")
def data():
    xtr, ytr = datasets.fashion_mnist("train")
    xte, yte = datasets.fashion_mnist("test")
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(xtr.shape[0], generator=g)[:TRAIN]
    return xtr[idx], ytr[idx], xte[:TEST], yte[:TEST]


def test_idx_files_read_as_expected(data):
    xtr, ytr, xte, yte = data
    assert xtr.dtype == torch.uint8 and xtr.shape == (TRAIN, 1, 28, 28) and int(xtr.max()) > 200
    assert set(ytr.tolist()) <= set(range(10)) and len(set(ytr.tolist())) == 10
    full_x, full_y = datasets.fashion_mnist("test")
    assert full_x.shape == (10000, 1, 28, 28) and torch.bincount(full_y).tolist() == [1000] * 10


@pytest.mark.parametrize("plan", ["int8", "int4"])
def test_short_qat_run_learns_and_exports_what_it_computes(data, plan, tmp_path):
    xtr, ytr, xte, yte = data
    torch.manual_seed(0)
    example = datasets.u8_to_real(xtr[:BATCH])
    prepared = dlasim.prepare_qat(M.FashionNet(4), (example,), plan=dlasim.PrecisionPlan.preset(
        plan, input={"dtype": "u8", "frac": 8}), freeze_bn_epoch=1, observer_disable_epoch=1)
    opt = torch.optim.Adam(prepared.parameters(), lr=3e-3)
    dlasim.set_epoch(prepared, 0)
    prepared.train()
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(TRAIN, generator=g)
    losses = []
    for i in range(0, TRAIN, BATCH):
        b = order[i:i + BATCH]
        loss = torch.nn.functional.cross_entropy(prepared(datasets.u8_to_real(xtr[b])), ytr[b])
        opt.zero_grad()
        loss.backward()
        for name, p in prepared.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), "non-finite gradient in " + name
        opt.step()
        losses.append(float(loss))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    dlasim.set_epoch(prepared, 1)
    prepared.eval()
    with torch.no_grad():
        logits = prepared(datasets.u8_to_real(xte))
    acc = float((logits.argmax(1) == yte).double().mean())
    assert acc > 0.45, "accuracy %.3f after one short epoch (chance: 0.10)" % acc
    path = dlasim.export(prepared, (datasets.u8_to_real(xte[:16]),), tmp_path / "fmnist.pt")
    ints = dlasim.integer_forward(path, xte[:200])  # the u8 pixels themselves
    frac = dlasim.output_fracs(path)[0][1]
    assert torch.equal(ints, dlasim.to_integers(logits[:200], frac))
    assert torch.equal(ints.argmax(1), logits[:200].argmax(1))
