"""Token maps: (B, N, C) tokens -> (B, C, h, w) patch grids, prefix tokens dropped by attribute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conceptkit.dissection.hooks import FeatureHooks
from conceptkit.dissection.tokens import (
    LayerReader,
    layer_reader,
    parse_grid,
    patch_size,
    prefix_tokens,
)
from conceptkit.errors import UsageError

PATCH = 4


class MarkerViT(nn.Module):
    """A ViT-like model: patch token t (row-major cell (t // w, t % w)) carries the marker
    ``100 * row + col + 1`` in channel 0 and ``-row - 1`` in channel 1; every prefix token
    carries -999. The prefix tokens are the tensors named like timm's / torchvision's."""

    def __init__(self, cls: int = 1, registers: int = 0, dist: int = 0) -> None:
        super().__init__()
        self.patch_size = PATCH
        self.class_token = nn.Parameter(torch.full((1, cls, 2), -999.0)) if cls else None
        self.reg_token = nn.Parameter(torch.full((1, registers, 2), -999.0)) if registers else None
        self.dist_token = nn.Parameter(torch.full((1, dist, 2), -999.0)) if dist else None
        self.block = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, hh, ww = x.shape
        h, w = hh // PATCH, ww // PATCH
        rows = torch.arange(h).view(h, 1).expand(h, w).reshape(-1).float()
        cols = torch.arange(w).view(1, w).expand(h, w).reshape(-1).float()
        patches = torch.stack([100 * rows + cols + 1, -rows - 1], dim=1).expand(b, h * w, 2)
        prefix = [
            t.expand(b, -1, -1)
            for t in (self.class_token, self.dist_token, self.reg_token)
            if t is not None
        ]
        tokens = torch.cat([*prefix, patches], dim=1)
        return self.block(tokens)  # (B, prefix + h * w, 2)


@pytest.mark.parametrize(("cls", "registers", "dist"), [(1, 0, 0), (1, 4, 0), (1, 0, 1)])
def test_each_cell_holds_its_own_marker(cls: int, registers: int, dist: int) -> None:
    net = MarkerViT(cls, registers, dist)
    assert prefix_tokens(net) == cls + registers + dist
    x = torch.zeros(2, 3, 3 * PATCH, 5 * PATCH)  # a 3x5 grid: rows and columns not confused
    with FeatureHooks(net, ["block"]) as hooks:
        maps = hooks.run(net, x)["block"]
    assert maps.shape == (2, 2, 3, 5)
    expect = torch.tensor([[100.0 * r + c + 1 for c in range(5)] for r in range(3)])
    assert torch.equal(maps[0, 0], expect) and torch.equal(maps[1, 0], expect)
    assert torch.equal(maps[0, 1], -torch.arange(3.0).view(3, 1).expand(3, 5) - 1)
    assert (maps != -999).all()  # no prefix token left in the grid


def test_timm_num_prefix_tokens_wins_and_grid_given() -> None:
    net = MarkerViT(1, 4, 0)
    net.num_prefix_tokens = 5  # type: ignore[assignment]
    assert prefix_tokens(net) == 5
    reader = layer_reader(net, "block", (2, 5 + 12, 2), grid=(3, 4))
    assert reader == LayerReader("block", "tokens", 5, (PATCH, PATCH), (3, 4))
    assert reader.describe() == "tokens: 5 prefix + 3x4"
    out = net(torch.zeros(1, 3, 3 * PATCH, 4 * PATCH))
    assert reader(out, (999, 999))[0, 0, 2, 3] == 100 * 2 + 3 + 1  # the given grid wins


def test_wrong_token_count_and_no_patch_size_are_one_line_errors() -> None:
    net = MarkerViT()
    out = net(torch.zeros(1, 3, 8, 8))  # 1 + 2x2 tokens
    reader = layer_reader(net, "block", tuple(out.shape))
    with pytest.raises(UsageError, match=r"gives 5 tokens, not 1 prefix \+ 3x3 patches"):
        reader(out, (12, 12))
    del net.patch_size
    assert patch_size(net) is None
    with pytest.raises(UsageError, match="names no patch size; give the grid with --grid"):
        layer_reader(net, "block", tuple(out.shape))(out, (8, 8))


def test_channels_last_layernorm_output_is_permuted() -> None:
    net = nn.Sequential(nn.LayerNorm(6))
    x = torch.randn(2, 4, 5, 6)  # (B, h, w, C)
    reader = layer_reader(net, "0", (2, 4, 5, 6))
    assert reader.kind == "channels_last" and reader.describe() == "channels-last"
    assert torch.equal(reader(x, (8, 10)), x.permute(0, 3, 1, 2))
    conv = nn.Sequential(nn.Conv2d(3, 6, 1))
    assert layer_reader(conv, "0", (2, 6, 5, 5)).kind == "map"


def test_parse_grid() -> None:
    assert parse_grid("14x14") == (14, 14) and parse_grid("7X9") == (7, 9)
    with pytest.raises(UsageError, match="expected HxW"):
        parse_grid("14")


def test_patch_embedding_output_has_no_prefix_to_drop() -> None:
    net = MarkerViT(1, 4, 0)
    patches = net(torch.zeros(1, 3, 2 * PATCH, 3 * PATCH))[:, 5:]  # (1, 6, 2): the grid alone
    reader = layer_reader(net, "block", tuple(patches.shape))
    assert reader.describe((2 * PATCH, 3 * PATCH), 6) == "tokens: 0 prefix + 2x3"
    assert reader.describe((2 * PATCH, 3 * PATCH), 11) == "tokens: 5 prefix + 2x3"
    got = reader(patches, (2 * PATCH, 3 * PATCH))
    assert torch.equal(got[0, 0], torch.tensor([[1.0, 2.0, 3.0], [101.0, 102.0, 103.0]]))
