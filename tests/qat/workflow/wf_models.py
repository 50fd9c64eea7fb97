"""Ordinary PyTorch models, written as people write them (no QuantStub, no FloatFunctional):
the models the workflow tests prepare without editing them."""

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin, cout, k=3, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity            # in-place `+=` skip
        return torch.relu(out)


class ResidualCNN(nn.Module):
    """ResNet-style: stem, residual blocks with `+` and `+=` skips, GAP, linear head."""

    def __init__(self, cin=3, classes=10, width=8):
        super().__init__()
        self.stem = conv_bn_relu(cin, width)
        self.layer1 = BasicBlock(width, width)
        self.layer2 = BasicBlock(width, 2 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class SPPF(nn.Module):
    """YOLOv5's SPPF: three chained 5x5 max pools, concatenated."""

    def __init__(self, c):
        super().__init__()
        self.cv1 = conv_bn_relu(c, c // 2, 1)
        self.cv2 = conv_bn_relu(2 * c, c, 1)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat([x, y1, y2, self.m(y2)], 1))


class YoloNeck(nn.Module):
    """Backbone + the YOLOv5 neck pattern: SPPF, nearest upsampling, concat with a lateral
    feature, two detection heads (1x1 convs without activation)."""

    def __init__(self, cin=3, width=8, outputs=6):
        super().__init__()
        w = width
        self.b1 = conv_bn_relu(cin, w, 3, 2)
        self.b2 = conv_bn_relu(w, 2 * w, 3, 2)
        self.b3 = conv_bn_relu(2 * w, 4 * w, 3, 2)
        self.sppf = SPPF(4 * w)
        self.lat = conv_bn_relu(4 * w, 2 * w, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.c3 = conv_bn_relu(4 * w, 2 * w, 3)
        self.head_small = nn.Conv2d(2 * w, outputs, 1)
        self.head_large = nn.Conv2d(4 * w, outputs, 1)

    def forward(self, x):
        p3 = self.b2(self.b1(x))
        p4 = self.sppf(self.b3(p3))
        lat = self.lat(p4)
        y = torch.cat([F.interpolate(lat, scale_factor=2.0, mode="nearest"), p3], dim=1)
        y = self.c3(y)
        return self.head_small(y), self.head_large(p4)


class DepthwiseSeparable(nn.Module):
    """MobileNet-style: depthwise 3x3 + pointwise 1x1 blocks with ReLU6, avg pool, dropout."""

    def __init__(self, cin=3, classes=10, width=8):
        super().__init__()
        w = width

        def dw(c, cout, stride):
            return nn.Sequential(
                nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False), nn.BatchNorm2d(c), nn.ReLU6(inplace=True),
                nn.Conv2d(c, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))

        self.stem = nn.Sequential(nn.Conv2d(cin, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU6(inplace=True))
        self.blocks = nn.Sequential(dw(w, 2 * w, 1), dw(2 * w, 4 * w, 2), dw(4 * w, 4 * w, 1))
        self.avg = nn.AvgPool2d(3, 1, 1)            # zero padding counted (count_include_pad)
        self.drop = nn.Dropout(0.2)
        self.classifier = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = self.avg(self.blocks(self.stem(x)))
        x = x.mean([2, 3])                          # GAP as a mean over H and W
        return self.classifier(self.drop(x))


class Siamese(nn.Module):
    """Two-branch siamese backbone: one shared encoder applied to both inputs; the
    embeddings are joined by a skip add and a concat, then a linear head."""

    def __init__(self, cin=1, width=8, dim=8):
        super().__init__()
        self.encoder = nn.Sequential(conv_bn_relu(cin, width), nn.MaxPool2d(2), conv_bn_relu(width, dim),
                                     nn.AdaptiveAvgPool2d(1))
        self.mix = nn.Conv2d(2 * dim, dim, 1)
        self.head = nn.Linear(dim, 2)

    def forward(self, a, b):
        ea, eb = self.encoder(a), self.encoder(b)
        joined = torch.cat([ea, eb], 1)
        z = F.relu(self.mix(joined)) + torch.add(ea, eb)
        return self.head(z.view(z.size(0), -1))


class _ResidualTrunk(nn.Module):
    """The trunk of SmallCNN and FashionNet for 1-channel images: three conv-BN-ReLU layers
    with max pools, then a residual conv; 4 * width channels at a quarter of the size.
    Subclasses add the head after it (modules registered in this order)."""

    def __init__(self, width):
        super().__init__()
        w = width
        self.conv1 = conv_bn_relu(1, w)
        self.conv2 = conv_bn_relu(w, 2 * w)
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = conv_bn_relu(2 * w, 4 * w)
        self.pool2 = nn.MaxPool2d(2)
        self.conv4 = conv_bn_relu(4 * w, 4 * w, relu=False)

    def trunk(self, x):
        x = self.pool1(self.conv2(self.conv1(x)))
        x = self.pool2(self.conv3(x))
        return F.relu(self.conv4(x) + x)


class SmallCNN(_ResidualTrunk):
    """The Fashion-MNIST model of the tests and of scripts/fashion_mnist_qat."""

    def __init__(self, width=16, classes=10):
        super().__init__(width)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.gap(self.trunk(x)), 1))


class FashionNet(_ResidualTrunk):
    """The Fashion-MNIST model of test_fashion_mnist and scripts/fashion_mnist_qat: three
    conv-BN-ReLU layers with max pools, a residual conv, a flatten and a linear classifier."""

    def __init__(self, width=16, classes=10):
        super().__init__(width)
        self.fc = nn.Linear(4 * width * 7 * 7, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.trunk(x), 1))


# ---------------------------------------------------------------------------------------
# Models with float parts (test_float_islands.py)
# ---------------------------------------------------------------------------------------


class TrackerBackbone(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(1, width, 3, 2), conv_bn_relu(width, 2 * width),
                                  conv_bn_relu(2 * width, 2 * width, relu=False))

    def forward(self, x):
        return self.body(x)


class XCorrHead(nn.Module):
    """SiamRPN++'s depthwise cross-correlation: the template features are the weights of
    a grouped conv over the search features (F.conv2d with a tensor weight), then a 1x1
    conv to the score map."""

    def __init__(self, channels, outputs=2):
        super().__init__()
        self.score = nn.Conv2d(channels, outputs, 1)

    def forward(self, z, x):
        b, c, h, w = x.shape
        kernel = z.reshape(b * c, 1, z.shape[2], z.shape[3])
        y = F.conv2d(x.reshape(1, b * c, h, w), kernel, groups=b * c)
        return self.score(y.reshape(b, c, y.shape[2], y.shape[3]))


class SiameseTracker(nn.Module):
    """One backbone, called on the template and on the search image; a correlation head."""

    def __init__(self, width=8):
        super().__init__()
        self.backbone = TrackerBackbone(width)
        self.head = XCorrHead(2 * width)

    def forward(self, template, search):
        return self.head(self.backbone(template), self.backbone(search))


class FloatMiddle(nn.Module):
    """conv-BN-ReLU layers around one conv meant to stay in float (with its BatchNorm and a
    SiLU, which the DLA does not run), a GAP and a linear classifier."""

    def __init__(self, width=8, classes=10):
        super().__init__()
        w = width
        self.conv1 = conv_bn_relu(1, w)
        self.conv2 = conv_bn_relu(w, 2 * w, stride=2)
        self.mid = nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False)
        self.mid_bn = nn.BatchNorm2d(2 * w)
        self.mid_act = nn.SiLU()
        self.conv3 = conv_bn_relu(2 * w, 2 * w)
        self.conv4 = conv_bn_relu(2 * w, 4 * w, stride=2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = self.conv2(self.conv1(x))
        x = self.mid_act(self.mid_bn(self.mid(x)))
        x = self.conv4(self.conv3(x))
        return self.fc(torch.flatten(self.gap(x), 1))


class YoloConv(nn.Module):
    """YOLOv5's Conv: conv, BatchNorm, SiLU (or `act_cls`, e.g. an activation the DLA has no
    table for)."""

    def __init__(self, c1, c2, k=1, s=1, act=True, act_cls=nn.SiLU):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = act_cls() if act else nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Detect(nn.Module):
    """YOLOv5's Detect head (models/yolo.py), as written there: 1x1 convs per level,
    `bs, _, ny, nx = x[i].shape`, view + permute to (bs, na, ny, nx, no), and in eval the
    grid decode; returns the maps in training, (boxes, maps) in eval."""

    def __init__(self, nc=2, ch=(16, 32), na=3, strides=(8, 16)):
        super().__init__()
        self.no, self.nl, self.na = nc + 5, len(ch), na
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * na, 1) for c in ch)
        self.grid = [torch.empty(0) for _ in ch]
        self.stride = strides

    def _make_grid(self, nx, ny):
        yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        return torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float()

    def forward(self, x):
        z = []
        for i in range(self.nl):
            x[i] = self.m[i](x[i])
            bs, _, ny, nx = x[i].shape
            x[i] = x[i].view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            if not self.training:
                if self.grid[i].shape[2:4] != x[i].shape[2:4]:
                    self.grid[i] = self._make_grid(nx, ny)
                y = x[i].sigmoid()
                xy = (y[..., 0:2] * 2 - 0.5 + self.grid[i]) * self.stride[i]
                wh = (y[..., 2:4] * 2) ** 2 * 4.0
                z.append(torch.cat((xy, wh, y[..., 4:]), -1).view(bs, -1, self.no))
        return x if self.training else (torch.cat(z, 1), x)


class TinyYolo(nn.Module):
    """A YOLOv5-style detector: Conv (conv, BN, act) backbone, a neck with upsampling and a
    concat, and the Detect head on two levels."""

    def __init__(self, width=8, act=True, act_cls=nn.SiLU):
        super().__init__()
        w = width
        self.b1 = YoloConv(3, w, 3, 2, act, act_cls)
        self.b2 = YoloConv(w, 2 * w, 3, 2, act, act_cls)
        self.b3 = YoloConv(2 * w, 2 * w, 3, 2, act, act_cls)
        self.b4 = YoloConv(2 * w, 4 * w, 3, 2, act, act_cls)
        self.lat = YoloConv(4 * w, 2 * w, 1, 1, act, act_cls)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.c3 = YoloConv(4 * w, 2 * w, 3, 1, act, act_cls)
        self.detect = Detect(ch=(2 * w, 4 * w))

    def forward(self, x):
        p3 = self.b3(self.b2(self.b1(x)))
        p4 = self.b4(p3)
        p3 = self.c3(torch.cat([self.up(self.lat(p4)), p3], 1))
        return self.detect([p3, p4])
