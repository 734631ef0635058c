"""Backbones (HRNet, CPN): state-dict layout, parameter counts, fill-vector fidelity."""
import json

import pytest
import torch

from conftest import fill_state_dict, load_reference, reference_path
from mvn.config import load_config
from mvn.models import build_model
from mvn.models.cpn import CPN
from mvn.models.hrnet import HRNET_TINY_STAGES, HRNet, hrnet_stages

BUILDERS = {
    'hrnet_32': lambda: HRNet(hrnet_stages(32)),
    'hrnet_48': lambda: HRNet(hrnet_stages(48)),
    'tiny_hrnet': lambda: HRNet(HRNET_TINY_STAGES),
    'cpn': lambda: CPN(),
}

# means of the reference fill are O(0.1..1000); the implementation matches them bit for bit on CPU
RTOL, ATOL = 1e-4, 1e-5


def build_on_meta(name):
    """Structure only (no allocation / init): enough for keys, shapes and counts."""
    with torch.device('meta'):
        return BUILDERS[name]()


def backbone_layout(name):
    with open(reference_path('state_dict_layout.json')) as f:
        layout = json.load(f)[name]
    prefix = 'backbone.'
    return {k[len(prefix):]: tuple(v) for k, v in layout.items() if k.startswith(prefix)}


def filled_backbone(name):
    """The backbone with the reference fill applied under its `backbone.`-prefixed names."""
    model = BUILDERS[name]()
    state = {'backbone.' + k: v for k, v in model.state_dict().items()}
    with torch.no_grad():
        fill_state_dict(state)  # tensors are shared with the model: filled in place
    return model.eval()


def channel_means(features):
    return [f.mean(dim=(0, 2, 3)) for f in features]


def filled_run(vectors, backbone):
    """(filled backbone, reference vectors, its features on the reference images)."""
    ref = load_reference(vectors)
    model = filled_backbone(backbone)
    with torch.no_grad():
        features = model(ref['images'].permute(0, 3, 1, 2))
    return model, ref, features


@pytest.fixture(scope='module')
def hrnet32_run():
    return filled_run('hrnet32_fill_vectors.pt', 'hrnet_32')


@pytest.fixture(scope='module')
def cpn_run():
    return filled_run('cpn_fill_vectors.pt', 'cpn')


# ---------------------------------------------------------------- layout and size

@pytest.mark.parametrize('name', sorted(BUILDERS))
def test_state_dict_layout(name):
    ours = {k: tuple(v.shape) for k, v in build_on_meta(name).state_dict().items()}
    ref = backbone_layout(name)
    missing = sorted(set(ref) - set(ours))
    unexpected = sorted(set(ours) - set(ref))
    wrong = sorted((k, ours[k], ref[k]) for k in set(ours) & set(ref) if ours[k] != ref[k])
    assert not (missing or unexpected or wrong), (
        'missing %s\nunexpected %s\nwrong shapes %s' % (missing[:20], unexpected[:20], wrong[:20]))


@pytest.mark.parametrize('name, count', [
    ('hrnet_32', 28535552), ('hrnet_48', 63594912), ('cpn', 27406826)])
def test_parameter_count(name, count):
    assert sum(p.numel() for p in build_on_meta(name).parameters()) == count


def test_stage_configs():
    config = load_reference('tiny_vectors.pt')['config']
    assert HRNET_TINY_STAGES == {k: config[k] for k in ('STAGE2', 'STAGE3', 'STAGE4')}
    w32 = hrnet_stages(32)
    assert [w32[s]['NUM_MODULES'] for s in ('STAGE2', 'STAGE3', 'STAGE4')] == [1, 4, 3]
    assert w32['STAGE4']['NUM_CHANNELS'] == [32, 64, 128, 256]
    assert w32['STAGE4']['NUM_BLOCKS'] == [4, 4, 4, 4]
    assert hrnet_stages(48)['STAGE3']['NUM_CHANNELS'] == [48, 96, 192]
    assert build_on_meta('hrnet_48').feature_channels == [48, 96, 192, 384]
    assert build_on_meta('tiny_hrnet').feature_channels == [8, 16, 32, 64]
    assert build_on_meta('cpn').feature_channels == [256] * 4


# ---------------------------------------------------------------- fidelity (reference fill)

def test_hrnet32_fill_vectors(hrnet32_run):
    model, ref, features = hrnet32_run
    assert model.feature_channels == [32, 64, 128, 256]
    assert [tuple(f.shape) for f in features] == [
        (2, 32, 64, 48), (2, 64, 32, 24), (2, 128, 16, 12), (2, 256, 8, 6)]
    for i, (ours, theirs) in enumerate(zip(channel_means(features),
                                           ref['backbone_feature_means'])):
        torch.testing.assert_close(ours, theirs, rtol=RTOL, atol=ATOL, msg='feature %d' % i)


@pytest.mark.parametrize("vectors, backbone", [("hrnet32_fill_vectors.pt", "hrnet_32"),
                                               ("cpn_fill_vectors.pt", "cpn")])
def test_backbone_features_are_right_where_they_are_sampled(vectors, backbone):
    """Channel means cannot see where a value lies. The reference's full-model output samples the
    feature maps at the joints, so our backbone's features, lifted by the filled transformer,
    must give it; the same maps mirrored left-right (equal channel means) must not."""
    ref = load_reference(vectors)
    model = build_model(load_config(None, ["model.backbone.type=" + backbone])).eval()
    with torch.no_grad():
        fill_state_dict(model.state_dict())
        features = model.backbone(ref['images'].permute(0, 3, 1, 2).contiguous())
        features = features[:len(model.volume_net.feat_embed)]
        lifted = model.lift(ref['keypoints_2d'], ref['keypoints_2d_crop'], features)
        mirrored = model.lift(ref['keypoints_2d'], ref['keypoints_2d_crop'],
                              [f.flip(-1) for f in features])
    for ours, theirs in zip(channel_means([f.flip(-1) for f in features]), channel_means(features)):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)  # means blind to mirroring
    torch.testing.assert_close(lifted, ref['output'], rtol=1e-4, atol=1e-4)
    assert (mirrored - ref['output']).abs().max() > 1e-2


def test_cpn_fill_vectors(cpn_run):
    model, ref, features = cpn_run
    assert [tuple(f.shape) for f in features] == [(2, 256, 64, 48)] * 4
    # order: cascade 0..3 = pyramid levels coarse (layer4) to fine (layer1)
    for i, (ours, theirs) in enumerate(zip(channel_means(features),
                                           ref['backbone_feature_means'])):
        torch.testing.assert_close(ours, theirs, rtol=RTOL, atol=ATOL, msg='feature %d' % i)


def test_hrnet_stage4_quirk(hrnet32_run):
    """[1..3] are the first stage-4 module's branch-block outputs: not its fused outputs, not
    the transition outputs -- and the reference means confirm it is what the reference returns."""
    model, ref, features = hrnet32_run
    first = model.stage4[0]
    captured = {}

    def hook(index):
        def fn(module, inputs, output):
            captured[index] = (inputs[0], output)
        return fn

    handles = [first.branches[i].register_forward_hook(hook(i)) for i in range(4)]
    try:
        with torch.no_grad():
            again = model(ref['images'].permute(0, 3, 1, 2))
            fused = first.fuse([captured[i][1] for i in range(4)])
    finally:
        for h in handles:
            h.remove()
    assert len(captured) == 4  # the first module's branches ran once each
    for i in (1, 2, 3):
        branch_in, branch_out = captured[i]
        assert torch.equal(again[i], branch_out)
        assert torch.equal(features[i], branch_out)
        # the alternatives a "fixed" implementation would return are far from the reference
        for alternative in (fused[i], branch_in):
            assert not torch.allclose(alternative.mean(dim=(0, 2, 3)),
                                      ref['backbone_feature_means'][i], rtol=1e-2, atol=1e-2)
    assert torch.equal(features[0], again[0])


def test_tiny_hrnet_quirk_and_shapes():
    """Tiny HRNet (one module per stage: the first stage-4 module is also the last, which fuses
    to one map only); random init: what the four outputs are."""
    torch.manual_seed(0)
    model = HRNet(HRNET_TINY_STAGES).eval()
    x = torch.randn(1, 3, 128, 96)
    outputs = {}
    handles = [model.stage4[0].branches[i].register_forward_hook(
        lambda m, inp, out, i=i: outputs.__setitem__(i, out)) for i in range(4)]
    with torch.no_grad():
        features = model(x)
    for h in handles:
        h.remove()
    assert [tuple(f.shape) for f in features] == [
        (1, 8, 32, 24), (1, 16, 16, 12), (1, 32, 8, 6), (1, 64, 4, 3)]
    for i in (1, 2, 3):
        assert features[i] is outputs[i]
    assert len(model.stage4[0].fuse_layers) == 1


def test_cpn_heads_unused_and_output_shape():
    torch.manual_seed(0)
    model = CPN(output_shape=(32, 24)).eval()
    fired = []
    handles = [m.register_forward_hook(lambda *a: fired.append(1))
               for m in (*model.global_net.predict, model.refine_net.final_predict)]
    with torch.no_grad():
        features = model(torch.randn(1, 3, 128, 96))
    for h in handles:
        h.remove()
    assert not fired
    assert [tuple(f.shape) for f in features] == [(1, 256, 32, 24)] * 4
