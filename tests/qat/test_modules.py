"""The dlasim Python package: hardware options, the torch.nn modules and a short training run."""

import numpy as np
import pytest
import torch

import dlasim
from dlasim import functional as F
from dlasim import nn as qnn
from dlasim.hw import HwOptions


def test_hw_options_come_from_the_hardware_config():
    for name in ["small", "default", "large"]:
        hw = HwOptions.preset(name)
        assert HwOptions.from_list(hw.to_list()) == hw
    assert HwOptions.preset("default") == HwOptions()
    hw = HwOptions.from_json('{"preset": "default", "acc_bits": 24, "rounding_mode": "HALF_EVEN"}')
    assert (hw.acc_bits, hw.rounding_mode) == (24, "HALF_EVEN")
    with pytest.raises(RuntimeError, match="acc_bits"):
        HwOptions.from_json('{"acc_bits": 99}')


def test_library_is_loaded_once():
    path = dlasim.load_library()
    assert path.endswith("libdla_qat.so")
    assert dlasim.load_library() == path


def test_observer_fracs_are_the_largest_that_fit():
    w = torch.tensor([[0.5, -0.25], [127.0, 1.0], [0.0, 0.0], [-1.0, 0.9]])
    fracs = qnn.weight_fracs_for(w, "i8")
    assert fracs == [7, 0, 32, 6]
    assert [qnn.frac_for_max(float(w[i].abs().max()), "i8") for i in range(4)] == fracs
    assert qnn.frac_for_max(128.0, "i8") == -1
    # One rule for every frac choice: the per-channel one treats a non-finite channel like
    # frac_for_max (and the C++ modules) do, with frac 0.
    w = torch.tensor([[float("inf"), 1.0], [float("nan"), 0.0], [3.0, -200.0]])
    assert qnn.weight_fracs_for(w, "i8") == [0, 0, -1]
    assert [qnn.frac_for_max(float(w[i].abs().max()), "i8") for i in range(3)] == [0, 0, -1]
    assert dlasim.observers.frac_for_range(-200.0, 3.0, "i8") == -1  # -200 * 2^-1 >= -128; 2^0 does not fit


def test_conv_module_equals_the_ops_and_counts():
    torch.manual_seed(0)
    conv = qnn.QConv2d(3, 5, 3, padding=1, in_dtype="u8", in_frac=4, out_dtype="u8", out_frac=3, relu=True)
    x = torch.randint(0, 256, (2, 3, 6, 6)).float() / 16
    y = conv(x)
    fracs = qnn.weight_fracs_for(conv.weight, "i8")
    wq = F.quantize_per_channel(conv.weight, fracs, 0, "i8")
    r = F.conv2d(x, wq.y, conv.bias, x_dtype="u8", x_frac=4, w_dtype="i8", w_fracs=fracs, y_dtype="u8", y_frac=3,
                 padding=1, clip=(0, None))
    assert torch.equal(y, r.y)
    assert int(conv.saturation_count) == int(r.counts[1]) + int(wq.counts[1])
    assert "overflow_count" in conv.state_dict() and "saturation_count" in conv.state_dict()
    conv.reset_counts()
    assert int(conv.saturation_count) == 0


def test_quantize_act_calibrates_and_learns():
    torch.manual_seed(1)
    q = qnn.QuantizeAct("i8", learnable=True)
    x = torch.randn(64, 8) * 3
    y = q(x)
    assert q.frac == qnn.frac_for_max(float(x.abs().max()), "i8")
    assert torch.equal(y, F.quantize(x, "i8", q.frac).y)
    (y * torch.randn_like(y)).sum().backward()
    assert q.log2_scale.grad is not None and torch.isfinite(q.log2_scale.grad).all()


def test_small_network_trains():
    torch.manual_seed(2)
    hw = HwOptions.preset("default")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = qnn.QuantizeAct("i8", frac=5, hw=hw)
            self.conv1 = qnn.QConv2d(3, 8, 3, padding=1, in_dtype="i8", in_frac=5, out_dtype="u8", out_frac=4,
                                     relu=True, learn_weight_scale=True, hw=hw)
            self.pool = qnn.QMaxPool2d(2, dtype="u8", frac=4)
            self.conv2 = qnn.QConv2d(8, 8, 3, padding=1, in_dtype="u8", in_frac=4, out_dtype="i8", out_frac=4, hw=hw)
            self.add = qnn.QAdd(a_dtype="i8", a_frac=4, b_dtype="u8", b_frac=4, out_dtype="u8", out_frac=4, relu=True,
                                hw=hw)
            self.gap = qnn.QAvgPool2d(None, in_dtype="u8", in_frac=4, out_dtype="u8", out_frac=6, hw=hw)
            self.cat = qnn.QConcat(1, dtype="u8", frac=6)
            self.fc = qnn.QLinear(16, 3, in_dtype="u8", in_frac=6, out_dtype="i16", out_frac=8, hw=hw)

        def forward(self, x):
            h = self.pool(self.conv1(self.quant(x)))
            g = self.gap(self.add(self.conv2(h), h)).flatten(1)
            return self.fc(self.cat([g, g]))

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(40):
        label = torch.randint(0, 3, (32,))
        x = torch.rand(32, 3, 12, 12) * 2 - 1 + torch.nn.functional.one_hot(label, 3).float().reshape(32, 3, 1, 1) * 0.5
        loss = torch.nn.functional.cross_entropy(net(x), label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert net.conv1.weight_log2_scale.grad is not None
    # Eval forward is the same integer computation (no randomness, no observers to freeze).
    net.eval()
    x = torch.rand(4, 3, 12, 12)
    assert torch.equal(net(x), net(x))


def test_a_loaded_state_dict_keeps_calibration_and_scales():
    torch.manual_seed(3)
    q = qnn.QuantizeAct("i8")
    q(torch.randn(10) * 3)
    q2 = qnn.QuantizeAct("i8")
    q2.load_state_dict(q.state_dict())
    q2(torch.randn(10) * 1000)  # would calibrate to a much smaller frac
    assert q2.frac == q.frac

    x = torch.randint(0, 256, (1, 2, 5, 5)).float() / 16
    c = qnn.QConv2d(2, 3, 3, in_dtype="u8", in_frac=4, learn_weight_scale=True)
    c(x)
    with torch.no_grad():
        c.weight_log2_scale += 1.0
    c2 = qnn.QConv2d(2, 3, 3, in_dtype="u8", in_frac=4, learn_weight_scale=True)
    c2.load_state_dict(c.state_dict())
    assert torch.equal(c2(x), c(x))
    assert torch.equal(c2.weight_log2_scale, c.weight_log2_scale)
