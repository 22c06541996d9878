"""DINO's self-supervised backbones in the encoder registry (Margaritescu's Table 3.1, for the paper profile)."""

import numpy as np
import pytest
import torch

from domainknowledge.models.encoders import load_encoder
from domainknowledge.models.encoders.base import EncoderNotAvailableError
from domainknowledge.models.encoders.pretrained import dino_network, dino_weights_file


def test_dino_resnet50_loads_its_published_checkpoint_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)          # torch.hub.get_dir() follows TORCH_HOME
    with pytest.raises(EncoderNotAvailableError, match="dino_resnet50_pretrain.pth"):
        load_encoder("dino-resnet50")
    torch.manual_seed(0)
    state = {k: v.half() for k, v in dino_network("resnet50").state_dict().items()}  # DINO ships no fc
    path = dino_weights_file("resnet50")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    encoder = load_encoder("dino-resnet50")
    images = np.random.default_rng(0).integers(0, 255, (2, 40, 56, 3), dtype=np.uint8)
    features = encoder.encode_images(images)
    assert features.shape == (2, 2048) and np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    torch.save({"head.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not DINO"):
        load_encoder("dino-resnet50")
