"""HRNet pose backbone (Sun et al. 2019, "Deep High-Resolution Representation Learning").

The network of the public "deep-high-resolution-net" pose code without its final 1x1 heatmap
layer, with the same state-dict layout (so the COCO checkpoints `pose_hrnet_w{32,48}_256x192.pth`
load unchanged, apart from their ignored `final_layer.*`).

`HRNet.forward` returns four feature maps, see docs/fidelity.md ("Model"). For a 256x192 input and
width C:
    [0] stage-4 output                                   (B, C, 64, 48)
    [1] first stage-4 module, branch 1, before fusion    (B, 2C, 32, 24)
    [2] first stage-4 module, branch 2, before fusion    (B, 4C, 16, 12)
    [3] first stage-4 module, branch 3, before fusion    (B, 8C, 8, 6)
[1..3] reproduce a QUIRK of the reference (see `HRNet.forward`).
"""
import copy

import torch.nn as nn
import torch.nn.functional as F

BN_MOMENTUM = 0.1

# Stage dicts in the format of the original experiment YAMLs (MODEL.EXTRA.STAGE2..4).
HRNET_TINY_STAGES = {
    'STAGE2': {'NUM_MODULES': 1, 'NUM_BRANCHES': 2, 'NUM_BLOCKS': [1, 1],
               'NUM_CHANNELS': [8, 16], 'BLOCK': 'BASIC', 'FUSE_METHOD': 'SUM'},
    'STAGE3': {'NUM_MODULES': 1, 'NUM_BRANCHES': 3, 'NUM_BLOCKS': [1, 1, 1],
               'NUM_CHANNELS': [8, 16, 32], 'BLOCK': 'BASIC', 'FUSE_METHOD': 'SUM'},
    'STAGE4': {'NUM_MODULES': 1, 'NUM_BRANCHES': 4, 'NUM_BLOCKS': [1, 1, 1, 1],
               'NUM_CHANNELS': [8, 16, 32, 64], 'BLOCK': 'BASIC', 'FUSE_METHOD': 'SUM'},
}


def hrnet_stages(width):
    """Stage dict of the standard HRNet-W{width} pose model (W32 / W48)."""
    def stage(num_modules, num_branches):
        return {
            'NUM_MODULES': num_modules,
            'NUM_BRANCHES': num_branches,
            'NUM_BLOCKS': [4] * num_branches,
            'NUM_CHANNELS': [width * 2 ** i for i in range(num_branches)],
            'BLOCK': 'BASIC',
            'FUSE_METHOD': 'SUM',
        }
    return {'STAGE2': stage(1, 2), 'STAGE3': stage(4, 3), 'STAGE4': stage(3, 4)}


def conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv_bn(in_channels, out_channels, kernel_size=1, stride=1, relu=False):
    """Conv (no bias) + BN (+ ReLU) as an nn.Sequential with keys 0 (conv) and 1 (bn)."""
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                  padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """ResNet bottleneck (expansion 4, stride on the 3x3 conv), as in torchvision / HRNet."""
    expansion = 4

    def __init__(self, in_channels, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


BLOCKS = {'BASIC': BasicBlock, 'BOTTLENECK': Bottleneck}


def make_blocks(block, in_channels, planes, num_blocks, stride=1):
    """`num_blocks` residual blocks; the first gets a 1x1 conv + BN shortcut when needed."""
    downsample = None
    if stride != 1 or in_channels != planes * block.expansion:
        downsample = conv_bn(in_channels, planes * block.expansion, 1, stride)
    layers = [block(in_channels, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of residual blocks followed by a multi-resolution fusion.

    `forward` = `fuse(forward_branches(xs))`. With `multi_scale_output=False` only the
    highest-resolution fused map is produced (the last module of the last stage).
    """

    def __init__(self, block, num_blocks, in_channels, num_channels, multi_scale_output=True):
        super().__init__()
        self.num_branches = len(num_channels)
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList([
            make_blocks(block, in_channels[i], num_channels[i], num_blocks[i])
            for i in range(self.num_branches)])
        self.out_channels = [c * block.expansion for c in num_channels]
        self.fuse_layers = self._make_fuse_layers() if self.num_branches > 1 else None

    def _make_fuse_layers(self):
        channels = self.out_channels
        num_outputs = self.num_branches if self.multi_scale_output else 1
        fuse_layers = []
        for i in range(num_outputs):  # target branch
            fuse_layer = []
            for j in range(self.num_branches):  # source branch
                if j > i:
                    # lower resolution -> 1x1 conv + BN, nearest upsample by 2^(j-i)
                    fuse_layer.append(nn.Sequential(
                        nn.Conv2d(channels[j], channels[i], 1, bias=False),
                        nn.BatchNorm2d(channels[i], momentum=BN_MOMENTUM),
                        nn.Upsample(scale_factor=2 ** (j - i), mode='nearest')))
                elif j == i:
                    fuse_layer.append(None)
                else:
                    # higher resolution -> (i-j) 3x3 stride-2 conv + BN, ReLU except the last
                    downs = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out_ch = channels[i] if last else channels[j]
                        downs.append(conv_bn(channels[j], out_ch, 3, 2, relu=not last))
                    fuse_layer.append(nn.Sequential(*downs))
            fuse_layers.append(nn.ModuleList(fuse_layer))
        return nn.ModuleList(fuse_layers)

    def forward_branches(self, xs):
        """Branch blocks, one per resolution; returns a new list."""
        return [branch(x) for branch, x in zip(self.branches, xs)]

    def fuse(self, xs):
        if self.fuse_layers is None:
            return list(xs)
        fused = []
        for i, fuse_layer in enumerate(self.fuse_layers):
            y = None
            for j, x in enumerate(xs):
                z = x if j == i else fuse_layer[j](x)
                y = z if y is None else y + z
            fused.append(F.relu(y))
        return fused

    def forward(self, xs):
        return self.fuse(self.forward_branches(xs))


class HRNet(nn.Module):
    """HRNet pose backbone without the final layer.

    Args:
        stages: dict with keys 'STAGE2', 'STAGE3', 'STAGE4', each with NUM_MODULES,
            NUM_BRANCHES, NUM_BLOCKS, NUM_CHANNELS, BLOCK ('BASIC' / 'BOTTLENECK'),
            FUSE_METHOD ('SUM'); see `hrnet_stages` and `HRNET_TINY_STAGES`.
    """

    def __init__(self, stages):
        super().__init__()
        self.stages_cfg = copy.deepcopy({k: stages[k] for k in ('STAGE2', 'STAGE3', 'STAGE4')})
        for cfg in self.stages_cfg.values():
            assert cfg.get('FUSE_METHOD', 'SUM') == 'SUM', 'only SUM fusion exists'
            assert cfg['NUM_BRANCHES'] == len(cfg['NUM_CHANNELS']) == len(cfg['NUM_BLOCKS'])

        # stem: two 3x3 stride-2 convs, 1/4 resolution
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_blocks(Bottleneck, 64, 64, 4)

        channels = [64 * Bottleneck.expansion]
        for n, name in enumerate(('STAGE2', 'STAGE3', 'STAGE4'), start=1):
            cfg = self.stages_cfg[name]
            block = BLOCKS[cfg['BLOCK']]
            stage_in = [c * block.expansion for c in cfg['NUM_CHANNELS']]
            setattr(self, 'transition%d' % n, self._make_transition(channels, stage_in))
            stage, channels = self._make_stage(cfg, stage_in,
                                               multi_scale_output=name != 'STAGE4')
            setattr(self, 'stage%d' % (n + 1), stage)

        # channels of the 4 returned maps (stage-4 branch widths), e.g. [32, 64, 128, 256]
        self.feature_channels = list(stage_in)

    @staticmethod
    def _make_transition(pre_channels, cur_channels):
        """Per target branch: None (unchanged), conv3x3+BN+ReLU (channel change) or, for a new
        branch, a chain of 3x3 stride-2 conv+BN+ReLU from the lowest-resolution branch."""
        layers = []
        for i, out_ch in enumerate(cur_channels):
            if i < len(pre_channels):
                if pre_channels[i] != out_ch:
                    layers.append(conv_bn(pre_channels[i], out_ch, 3, 1, relu=True))
                else:
                    layers.append(None)
            else:
                downs = []
                num_downs = i + 1 - len(pre_channels)
                for k in range(num_downs):
                    in_ch = pre_channels[-1]
                    down_out = out_ch if k == num_downs - 1 else in_ch
                    downs.append(conv_bn(in_ch, down_out, 3, 2, relu=True))
                layers.append(nn.Sequential(*downs))
        return nn.ModuleList(layers)

    @staticmethod
    def _make_stage(cfg, in_channels, multi_scale_output=True):
        block = BLOCKS[cfg['BLOCK']]
        modules = []
        for m in range(cfg['NUM_MODULES']):
            last = m == cfg['NUM_MODULES'] - 1
            module = HighResolutionModule(block, cfg['NUM_BLOCKS'], in_channels,
                                          cfg['NUM_CHANNELS'],
                                          multi_scale_output=multi_scale_output or not last)
            modules.append(module)
            in_channels = module.out_channels
        return nn.Sequential(*modules), in_channels

    @staticmethod
    def _transition(transition, xs):
        """Apply a transition: existing branches map to themselves, new ones come from xs[-1]."""
        out = []
        for i, layer in enumerate(transition):
            src = xs[i] if i < len(xs) else xs[-1]
            out.append(src if layer is None else layer(src))
        return out

    def forward_stem(self, x):
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 64, H/2, W/2)
        x = self.relu(self.bn2(self.conv2(x)))  # (B, 64, H/4, W/4)
        return self.layer1(x)  # (B, 256, 64, 48)

    def forward(self, x):
        x = self.forward_stem(x)  # (B, 256, 64, 48)
        xs = self._transition(self.transition1, [x])  # [(B, C, 64, 48), (B, 2C, 32, 24)]
        xs = self.stage2(xs)
        xs = self._transition(self.transition2, xs)  # + (B, 4C, 16, 12)
        xs = self.stage3(xs)
        xs = self._transition(self.transition3, xs)  # + (B, 8C, 8, 6)

        # QUIRK: the reference passes `xs` to stage 4, whose first module writes its branch
        # outputs back into that list (in place) before fusing; the caller then returns
        # xs[1:] next to the stage-4 output. So features [1], [2], [3] are the first stage-4
        # module's branch-block outputs (pre-fusion), not the transition outputs and not any
        # fused map. Reproduced here explicitly.
        first, rest = self.stage4[0], self.stage4[1:]
        branch_outs = first.forward_branches(xs)  # 4 maps, C..8C, pre-fusion
        ys = first.fuse(branch_outs)
        ys = rest(ys)  # [(B, C, 64, 48)] -- the last module outputs branch 0 only
        return [ys[0]] + branch_outs[1:]
