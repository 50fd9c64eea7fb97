"""Models with stock activations for the DLA's table unit (VLUT): a YOLOv5-style net
(Conv + BN + SiLU, a C3 bottleneck with a residual add, SPPF), MobileNetV3-style inverted
residuals with hardswish (no squeeze-excite: it needs a multiply the DLA lacks), a net
with the other table functions, and FashionNet with SiLU. Used by test_lut_models and
scripts/fashion_mnist_qat."""

import torch
import torch.nn.functional as TF
from torch import nn

from wf_models import FashionNet


class Conv(nn.Module):
    """YOLOv5's Conv: conv, BN, activation (SiLU unless given)."""

    def __init__(self, cin, cout, k=1, s=1, g=1, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU() if act is None else act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cv1, self.cv2 = Conv(c, c, 1), Conv(c, c, 3)

    def forward(self, x):
        return x + self.cv2(self.cv1(x))


class C3(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        h = cout // 2
        self.cv1, self.cv2, self.cv3 = Conv(cin, h), Conv(cin, h), Conv(2 * h, cout)
        self.m = Bottleneck(h)

    def forward(self, x):
        return self.cv3(torch.cat([self.m(self.cv1(x)), self.cv2(x)], 1))


class SPPF(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cv1, self.cv2 = Conv(c, c // 2), Conv(2 * c, c)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat([x, y1, y2, self.m(y2)], 1))


class YoloSiLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Conv(3, 8, 3, 2)
        self.c3 = C3(8, 8)
        self.down = Conv(8, 16, 3, 2)
        self.sppf = SPPF(16)
        self.head = nn.Conv2d(16, 6, 1)

    def forward(self, x):
        return self.head(self.sppf(self.down(self.c3(self.stem(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV3's block without squeeze-excite: expand, depthwise, project (+ skip)."""

    def __init__(self, c, expand):
        super().__init__()
        e = c * expand
        self.expand = Conv(c, e, 1, act=nn.Hardswish())
        self.dw = Conv(e, e, 3, g=e, act=nn.Hardswish())
        self.project = nn.Sequential(nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.project(self.dw(self.expand(x)))


class MobileNetV3Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Conv(3, 8, 3, 2, act=nn.Hardswish())
        self.blocks = nn.Sequential(InvertedResidual(8, 3), InvertedResidual(8, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class OtherActivations(nn.Module):
    """The rest of the table functions, after convs and after an add."""

    def __init__(self):
        super().__init__()
        self.a = Conv(3, 8, 3, act=nn.Sigmoid())
        self.b = Conv(8, 8, 3, act=nn.Tanh())
        self.c = Conv(8, 8, 1, act=nn.LeakyReLU(0.1))
        self.d = Conv(8, 8, 1, act=nn.GELU(approximate="tanh"))
        self.e = Conv(8, 8, 1, act=nn.ELU())
        self.f = nn.Hardsigmoid()

    def forward(self, x):
        y = self.b(self.a(x))
        return self.f(y + self.e(self.d(self.c(y))))


class FashionNetSiLU(FashionNet):
    """FashionNet with every ReLU (modules and the residual's) replaced by SiLU."""

    def __init__(self, width=16, classes=10):
        super().__init__(width, classes)
        for parent in self.modules():
            for name, child in parent.named_children():
                if isinstance(child, nn.ReLU):
                    setattr(parent, name, nn.SiLU())

    def trunk(self, x):
        x = self.pool1(self.conv2(self.conv1(x)))
        x = self.pool2(self.conv3(x))
        return TF.silu(self.conv4(x) + x)
