"""DistributedDataParallel on CPU (gloo, two processes): observer statistics and BN batch
statistics are all-reduced, so both ranks pick the same fracs and stay identical, and the
fracs are those one process picks on the two ranks' batches together."""

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import dlasim
import wf_models as M

STEPS = 3
BATCH = 6


def batches(rank):
    g = torch.Generator().manual_seed(100 + rank)
    # rank 1 sees larger images: its statistics must reach rank 0's fracs
    scale = 1.0 if rank == 0 else 3.0
    return [(torch.rand(BATCH, 1, 28, 28, generator=g) * scale, torch.randint(0, 10, (BATCH,), generator=g))
            for _ in range(STEPS)]


def make_model():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28)
    return dlasim.prepare_qat(M.SmallCNN(4), (x,), plan="int4", observer="minmax", bn_stats_grad=True)


def snapshot(model):
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"state": state, "fracs": model.fracs()}


def worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world)
    try:
        model = make_model()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
        dlasim.set_epoch(ddp, 0)
        for x, y in batches(rank):
            loss = torch.nn.functional.cross_entropy(ddp(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        torch.save(snapshot(model), os.path.join(out_dir, "rank%d.pt" % rank))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results():
    with tempfile.TemporaryDirectory(prefix="qat2_ddp_") as d:
        init_file = os.path.join(d, "init")
        mp.spawn(worker, args=(2, init_file, d), nprocs=2, join=True)
        yield [torch.load(os.path.join(d, "rank%d.pt" % r)) for r in range(2)]


def test_both_ranks_hold_identical_weights_fracs_and_statistics(ddp_results):
    r0, r1 = ddp_results
    assert r0["fracs"] == r1["fracs"]
    assert r0["state"].keys() == r1["state"].keys()
    compared = 0
    for k in r0["state"]:
        if k.endswith(("overflow_count", "saturation_count", "element_count")):
            continue  # each rank counts its own batches
        assert torch.equal(r0["state"][k], r1["state"][k]), k
        compared += 1
    assert compared > 50
    # training moved the weights
    fresh = make_model().state_dict()
    assert not torch.equal(fresh["layers.conv2_0.module.weight"], r0["state"]["layers.conv2_0.module.weight"])


def test_observers_saw_both_ranks_batches(ddp_results):
    r0, _ = ddp_results
    # One process on the two ranks' batches together, without the updates: the graph
    # input's min/max observer must end where the all-reduced one did.
    seen = torch.cat([x for r in range(2) for x, _ in batches(r)])
    obs = dlasim.observers.MinMaxObserver("u8")
    obs.observe(seen)
    key = "acts.0.observer.max_val"
    assert float(r0["state"][key]) == float(seen.max())
    # rank 0 alone would have chosen a finer frac for its [0, 1) images
    alone = dlasim.observers.MinMaxObserver("u8")
    alone.observe(torch.cat([x for x, _ in batches(0)]))
    assert alone.frac() > obs.frac()
