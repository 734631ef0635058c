"""The context-aware PoseFormer (`volume_net`).

Reads top to bottom: drop path, MLP, self-attention, the pre-norm transformer block, the
deformable context block, then the network that stacks them.

Token layout: for each of the 17 joints there are 5 tokens, the 2D-coordinate embedding (level 0)
and one per backbone feature level (1..4). Context blocks refine the 4 feature tokens by
deformable sampling around the joint; `res_blocks` attend across the 5 tokens of one joint;
`joint_blocks` attend across joints with the 5 tokens concatenated.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class DropPath(nn.Module):
    """Stochastic depth, one keep/drop draw per sample (along dim 0)."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = x.new_empty(shape).bernoulli_(keep_prob)
        return x * mask / keep_prob

    def extra_repr(self):
        return "drop_prob=%.3f" % self.drop_prob


class Mlp(nn.Module):
    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with a qkv bias and scale head_dim^-0.5."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        x = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, heads, N, head_dim)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    """Pre-norm ViT block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim, num_heads=8, mlp_ratio=2.0, drop_path=0.0, norm_eps=1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class DeformableContextBlock(nn.Module):
    """Refines the feature tokens of each level by sampling that level's map around the joint.

    Each (level, joint) token predicts num_heads x num_samples offsets (tanh-bounded, in the
    normalised [-1, 1] grid of the map) and softmax weights; every sample is projected to
    dim / num_heads channels and the weighted sum over samples gives that head's slice.
    """

    def __init__(self, dim, feature_channels, num_heads=4, num_samples=4, mlp_ratio=2.0,
                 drop_path=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.num_samples = num_samples
        self.norm1 = nn.LayerNorm(dim)
        self.attention_weights = nn.Linear(dim, num_heads * num_samples)
        self.sampling_offsets = nn.Linear(dim, num_heads * num_samples * 2)
        self.embed_proj = nn.ModuleList(nn.Linear(c, dim // num_heads) for c in feature_channels)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.reset_sampling_parameters()

    def reset_sampling_parameters(self):
        """Offsets start on a small ring, head h pointing at angle 2*pi*h/heads."""
        nn.init.zeros_(self.sampling_offsets.weight)
        cpu = dict(dtype=torch.float32, device="cpu")  # also when built under torch.device("meta")
        angles = torch.arange(self.num_heads, **cpu) * (2 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], -1)  # (heads, 2)
        directions = directions / directions.abs().max(-1, keepdim=True)[0]
        steps = 0.01 * torch.arange(1, self.num_samples + 1, **cpu)  # (samples,)
        bias = directions[:, None, :] * steps[None, :, None]  # (heads, samples, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)

    def forward(self, tokens, ref, features):
        # tokens (B, 1+L, J, D); ref (B, J, 2) in [-1, 1]; features[l] (B, C_l, H_l, W_l)
        B, _, J, D = tokens.shape
        L, H, S = len(features), self.num_heads, self.num_samples
        coord_token, feature_tokens = tokens[:, :1], tokens[:, 1:]  # (B, 1, J, D), (B, L, J, D)
        query = self.norm1(feature_tokens + coord_token)  # (B, L, J, D)

        weights = self.attention_weights(query).view(B, L, J, H, S).softmax(-1)
        offsets = self.sampling_offsets(query).view(B, L, J, H * S, 2).tanh()
        positions = offsets + ref.view(B, 1, J, 1, 2)  # (B, L, J, H*S, 2)

        sampled = []
        for level, feature_map in enumerate(features):  # level l samples only features[l]
            values = F.grid_sample(feature_map, positions[:, level], padding_mode="border",
                                   align_corners=True)  # (B, C_l, J, H*S)
            sampled.append(self.embed_proj[level](values.permute(0, 2, 3, 1)))  # (B, J, H*S, D/H)
        sampled = torch.stack(sampled, 1).view(B, L, J, H, S, D // H)
        context = (weights.unsqueeze(-1) * sampled).sum(-2).reshape(B, L, J, D)

        feature_tokens = feature_tokens + self.drop_path(context)
        feature_tokens = feature_tokens + self.drop_path(self.mlp(self.norm2(feature_tokens)))
        return torch.cat([coord_token, feature_tokens], 1)  # (B, 1+L, J, D)


class ContextPoseFormer(nn.Module):
    """`volume_net`: 2D joints + sampled backbone features -> root-relative 3D joints."""

    def __init__(self, feature_channels, embed_dim_ratio=128, depth=4, num_joints=17,
                 drop_path_rate=0.2, num_heads=8, mlp_ratio=2.0, deformable_context=True):
        super().__init__()
        D = embed_dim_ratio
        levels = len(feature_channels)
        tokens = levels + 1
        self.num_joints = num_joints
        self.coord_embed = nn.Linear(2, D)
        self.feat_embed = nn.ModuleList(nn.Linear(c, D) for c in feature_channels)
        self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, tokens, num_joints, D))
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        # The MPI-INF-3DHP models have no context blocks (deformable_context=False), nor has
        # the context-agnostic model (no feature levels: one token per joint).
        self.context_blocks = nn.ModuleList(
            DeformableContextBlock(D, feature_channels, mlp_ratio=mlp_ratio, drop_path=dpr[i])
            for i in range(depth if deformable_context and levels else 0))
        self.res_blocks = nn.ModuleList(
            Block(D, num_heads, mlp_ratio, drop_path=dpr[i]) for i in range(depth))
        self.joint_blocks = nn.ModuleList(
            Block(D * tokens, num_heads, mlp_ratio, drop_path=dpr[i]) for i in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(D * tokens), nn.Linear(D * tokens, 3))

    def forward(self, keypoints_2d, ref, features):
        # keypoints_2d (B, J, 2) screen-normalised; ref (B, J, 2) crop in [-1, 1]
        B, J, _ = keypoints_2d.shape
        tokens = [self.coord_embed(keypoints_2d)]  # (B, J, D)
        grid = ref[:, :, None, :]  # (B, J, 1, 2)
        for level, feature_map in enumerate(features):
            values = F.grid_sample(feature_map, grid, align_corners=True)  # (B, C_l, J, 1)
            tokens.append(self.feat_embed[level](values[..., 0].transpose(1, 2)))  # (B, J, D)
        x = torch.stack(tokens, 1) + self.Spatial_pos_embed  # (B, 1+L, J, D)

        for block in self.context_blocks:
            x = block(x, ref, features)

        T, D = x.shape[1], x.shape[3]
        x = x.permute(0, 2, 1, 3).reshape(B * J, T, D)  # (B*J, 1+L, D)
        for block in self.res_blocks:
            x = block(x)

        x = x.reshape(B, J, T * D)  # (B, J, (1+L)*D), level-major per joint
        for block in self.joint_blocks:
            x = block(x)
        return self.head(x).view(B, 1, J, 3)
