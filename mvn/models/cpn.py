"""Cascaded Pyramid Network backbone (Chen et al. 2018): ResNet-50 + GlobalNet + RefineNet.

Same state-dict layout as the public PyTorch CPN (`CPN50_256x192.pth.tar` loads unchanged):
`resnet.*`, `global_net.{laterals,upsamples,predict}.*`, `refine_net.{cascade,final_predict}.*`.
The keypoint heads (`global_net.predict.*`, `refine_net.final_predict.*`) hold weights only; they
are not computed. `CPN.forward` returns the 4 RefineNet cascade outputs, see docs/fidelity.md.
"""
import torch.nn as nn

from mvn.geometry import HEATMAP_SHAPE

from .hrnet import Bottleneck, make_blocks


class ResNet50(nn.Module):
    """ResNet-50 without pooling head; returns [layer4, layer3, layer2, layer1]."""

    def __init__(self, layers=(3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_blocks(Bottleneck, 64, 64, layers[0])
        self.layer2 = make_blocks(Bottleneck, 256, 128, layers[1], stride=2)
        self.layer3 = make_blocks(Bottleneck, 512, 256, layers[2], stride=2)
        self.layer4 = make_blocks(Bottleneck, 1024, 512, layers[3], stride=2)
        self.out_channels = [2048, 1024, 512, 256]

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, 64, 48)
        x1 = self.layer1(x)  # (B, 256, 64, 48)
        x2 = self.layer2(x1)  # (B, 512, 32, 24)
        x3 = self.layer3(x2)  # (B, 1024, 16, 12)
        x4 = self.layer4(x3)  # (B, 2048, 8, 6)
        return [x4, x3, x2, x1]


class GlobalNet(nn.Module):
    """Feature pyramid from coarse to fine: global_fms[i] = lateral_i(x_i) + up(global_fms[i-1]).

    `predict` (per-level heatmap heads) exists for checkpoint compatibility and is not run.
    """

    def __init__(self, in_channels=(2048, 1024, 512, 256), output_shape=HEATMAP_SHAPE, num_class=17,
                 channels=256):
        super().__init__()
        n = len(in_channels)
        self.laterals = nn.ModuleList([
            nn.Sequential(nn.Conv2d(c, channels, 1, bias=False), nn.BatchNorm2d(channels),
                          nn.ReLU(inplace=True))
            for c in in_channels])
        self.upsamples = nn.ModuleList([
            nn.Sequential(nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True),
                          nn.Conv2d(channels, channels, 1, bias=False),
                          nn.BatchNorm2d(channels))
            for _ in range(n - 1)])
        # unused heads, weights only
        self.predict = nn.ModuleList([
            nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels),
                          nn.ReLU(inplace=True),
                          nn.Conv2d(channels, num_class, 3, padding=1, bias=False),
                          nn.Upsample(size=output_shape, mode='bilinear', align_corners=True),
                          nn.BatchNorm2d(num_class))
            for _ in range(n)])

    def forward(self, xs):
        global_fms = []
        for i, (lateral, x) in enumerate(zip(self.laterals, xs)):
            y = lateral(x)
            if i > 0:
                y = y + self.upsamples[i - 1](global_fms[-1])
            global_fms.append(y)
        return global_fms  # (B, 256, 8, 6), (B, 256, 16, 12), (B, 256, 32, 24), (B, 256, 64, 48)


class RefineBottleneck(nn.Module):
    """CPN RefineNet bottleneck: expansion 2, always a 1x1 conv + BN shortcut."""
    expansion = 2

    def __init__(self, in_channels, planes=128):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                        nn.BatchNorm2d(out_channels))

    def forward(self, x):
        shortcut = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class RefineNet(nn.Module):
    """cascade[i] = (n - 1 - i) RefineBottlenecks + bilinear resize to `output_shape`.

    `final_predict` (concat -> bottleneck -> heatmaps) exists for checkpoint compatibility and is
    not run.
    """

    def __init__(self, channels=256, output_shape=(64, 48), num_class=17, num_levels=4):
        super().__init__()
        self.cascade = nn.ModuleList()
        for i in range(num_levels):
            layers = [RefineBottleneck(channels, 128) for _ in range(num_levels - 1 - i)]
            layers.append(nn.Upsample(size=tuple(output_shape), mode='bilinear',
                                      align_corners=True))
            self.cascade.append(nn.Sequential(*layers))
        # unused head, weights only
        self.final_predict = nn.Sequential(
            RefineBottleneck(num_levels * channels, 128),
            nn.Conv2d(256, num_class, 3, padding=1, bias=False),
            nn.BatchNorm2d(num_class))

    def forward(self, xs):
        return [cascade(x) for cascade, x in zip(self.cascade, xs)]


class CPN(nn.Module):
    """CPN-50 backbone returning the 4 RefineNet cascade outputs.

    Args:
        output_shape: (H, W) of the returned maps; (64, 48) for 256x192 crops.
        num_class: joints of the unused heatmap heads (17 for the COCO checkpoint).

    forward(x (B, 3, 256, 192)) -> [r0, r1, r2, r3], each (B, 256, 64, 48), where r_i is the
    cascade output of pyramid level i, coarse to fine: r0 from layer4 (8x6, 3 bottlenecks), ...,
    r3 from layer1 (64x48, no bottleneck).
    """

    def __init__(self, output_shape=(64, 48), num_class=17):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.resnet = ResNet50()
        self.global_net = GlobalNet(self.resnet.out_channels, self.output_shape, num_class)
        self.refine_net = RefineNet(256, self.output_shape, num_class)
        self.feature_channels = [256] * 4

    def forward(self, x):
        xs = self.resnet(x)  # [(B, 2048, 8, 6), (B, 1024, 16, 12), (B, 512, 32, 24), (B, 256, 64, 48)]
        global_fms = self.global_net(xs)  # 4 x (B, 256, h_i, w_i), coarse to fine
        return self.refine_net(global_fms)  # 4 x (B, 256, 64, 48)
