"""Any vision model: torchvision / timm / Hugging Face transformers, dissected end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conceptkit.dissection.hooks import FeatureHooks
from conceptkit.dissection.models import default_layers, list_layers, load_model
from conceptkit.dissection.preprocess import get_preprocess
from conceptkit.dissection.run import dissect
from conceptkit.errors import ModelLoadError, UsageError

pytest.importorskip("torchvision")


def _dissect(model: torch.nn.Module, data: Path, layers: list[str], **kw: Any) -> dict[str, Any]:
    res = dissect(model, data, layers, batch_size=3, workers=0, device="cpu", **kw)
    return res.layers


def _check(layers: dict[str, Any], expect: dict[str, tuple[int, tuple[int, int]]]) -> None:
    for name, (units, size) in expect.items():
        lay = layers[name]
        assert lay.units == units and lay.map_size == size, name
        assert np.isfinite(lay.thresholds).all() and lay.top_maps.shape[-2:] == size
        assert lay.act_total.sum() > 0  # the maps were thresholded against the planes


def test_torchvision_vit_b_16(mini_slice: Callable[[int], Path]) -> None:
    model = load_model("torchvision:vit_b_16:none").module
    layers = default_layers(model)
    assert layers == [f"encoder.layers.encoder_layer_{i}" for i in (2, 5, 8, 11)]
    infos = {i.name: i.read for i in list_layers(model)}
    assert infos[layers[0]] == "tokens: 1 prefix + 14x14" and infos["conv_proj"] == "map"
    _check(_dissect(model, mini_slice(3), layers[-1:]), {layers[-1]: (768, (14, 14))})


def test_vit_at_another_input_size(mini_slice: Callable[[int], Path]) -> None:
    model = load_model("torchvision:vit_b_16:none").module
    # torchvision's ViT refuses other sizes than its image_size: build one for 112
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    small = tv.models.VisionTransformer(112, 16, 2, 2, 32, 64)
    prep = get_preprocess("imagenet", input_size=112)
    layers = _dissect(small, mini_slice(3), ["encoder.layers.encoder_layer_1"], preprocess=prep)
    _check(layers, {"encoder.layers.encoder_layer_1": (32, (7, 7))})
    assert model.image_size == 224
    with FeatureHooks(model, ["encoder"]) as hooks, pytest.raises(UsageError) as info:
        hooks.run(model, prep(torch.zeros(1, 3, 224, 224, dtype=torch.uint8)))
    assert str(info.value) == (
        "the model's forward of a (1, 3, 112, 112) batch failed: AssertionError: Wrong image "
        "height! Expected 224 but got 112! (does the model need another --input-size?)"
    )


def test_timm_vit_and_convnext(mini_slice: Callable[[int], Path]) -> None:
    pytest.importorskip("timm")
    data = mini_slice(3)
    vit = load_model("timm:vit_small_patch16_224:none").module
    assert default_layers(vit) == ["blocks.2", "blocks.5", "blocks.8", "blocks.11"]
    _check(_dissect(vit, data, ["blocks.5"]), {"blocks.5": (384, (14, 14))})
    convnext = load_model("timm:convnext_tiny:none").module
    stages = default_layers(convnext)
    assert stages == ["stages.0", "stages.1", "stages.2", "stages.3"]
    _check(
        _dissect(convnext, data, stages),
        {"stages.0": (96, (56, 56)), "stages.1": (192, (28, 28)), "stages.3": (768, (7, 7))},
    )


def test_hugging_face_vit_from_config(mini_slice: Callable[[int], Path], tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=224,
        patch_size=16,
    )
    cfg.save_pretrained(tmp_path / "vit")
    loaded = load_model(f"hf:{tmp_path / 'vit'}:none")
    model = loaded.module
    assert loaded.description.startswith("ViT from ")
    layers = default_layers(model)
    assert len(layers) == 4
    _check(_dissect(model, mini_slice(3), layers), {n: (32, (14, 14)) for n in layers})
    # the map is the hidden state of the block with the CLS token dropped
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad(), FeatureHooks(model, [layers[0]]) as hooks:
        got = hooks.run(model, x)[layers[0]]
        hidden = model(x, output_hidden_states=True).hidden_states[1]
    torch.testing.assert_close(got, hidden[:, 1:].reshape(1, 14, 14, 32).permute(0, 3, 1, 2))


def test_missing_weights_name_the_file(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(Exception, match="put model.safetensors into"):
        load_model(f"hf:{tmp_path}")


def test_torchvision_swin_stages_are_channels_last(mini_slice: Callable[[int], Path]) -> None:
    model: Any = load_model("torchvision:swin_t:none").module
    stages = default_layers(model)
    assert stages == ["features.1", "features.3", "features.5", "features.7"]
    reads = {i.name: i.read for i in list_layers(model)}
    assert reads["features.7"] == "channels-last" and reads["features.0.0"] == "map"
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad(), FeatureHooks(model, ["features.7"]) as hooks:
        got = hooks.run(model, x)["features.7"]
        raw = model.features(x)  # (1, 7, 7, 768)
    torch.testing.assert_close(got, raw.permute(0, 3, 1, 2))
    _check(_dissect(model, mini_slice(3), ["features.7"]), {"features.7": (768, (7, 7))})


def test_timm_weights_from_a_local_file(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(1)
    src = timm.create_model("resnet10t", pretrained=False)
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    loaded = load_model(f"timm:resnet10t:{tmp_path / 'w.safetensors'}")
    assert loaded.description == "resnet10t from timm with weights from w.safetensors"
    for key, value in src.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value), key
    with pytest.raises(
        ModelLoadError, match="are not in the Hugging Face cache .* never downloads"
    ):
        _no_cache(tmp_path)
    with pytest.raises(ModelLoadError, match="timm has no model 'resnet10'; did you mean"):
        load_model("timm:resnet10")


def _no_cache(tmp_path: Path) -> None:
    """``timm:NAME`` with an empty Hugging Face cache (HF_HUB_CACHE read per look-up)."""
    import huggingface_hub.constants as hc

    old = hc.HF_HUB_CACHE
    hc.HF_HUB_CACHE = str(tmp_path / "empty-cache")
    try:
        load_model("timm:resnet10t")
    finally:
        hc.HF_HUB_CACHE = old


def test_hugging_face_weights_from_the_folder(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(3)
    src = transformers.ViTModel(cfg)
    src.save_pretrained(tmp_path / "vit", safe_serialization=True)
    loaded = load_model(f"hf:{tmp_path / 'vit' / 'config.json'}")
    for key, value in src.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value), key
    assert loaded.description == f"ViT from {tmp_path / 'vit'} (model.safetensors)"
