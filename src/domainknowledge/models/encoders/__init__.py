"""The encoder registry: pretrained image and image-text encoders behind one interface.

Every encoder maps images (and, for image-text models, texts) to unit-length embeddings in one space and
carries its preprocessing, name and provenance::

    from domainknowledge.models import encoders

    clip = encoders.load_encoder("standin-clip-cpu")            # trained here on first use, then cached
    x = clip.encode_images(images_uint8_nhwc)                    # (N, D) float32, unit rows
    w = encoders.zero_shot_classifier(clip, ["circle", "square"], ["a photo of a {}."])   # (C, D)
    predicted = encoders.zero_shot_predict(x, w)                 # (N,)
    encoders.registry_table()                                    # every entry, and whether it loads offline

Modules: :mod:`.base` (the interface), :mod:`.registry` (names and loading), :mod:`.standin_clip` (the CLIP
trained here), :mod:`.pretrained` (open_clip, ConSE, EfficientNet-Lite, torchvision, raw pixels),
:mod:`.zero_shot` (prompt ensembles, retrieval recall, the embedding cache).
"""

from domainknowledge.models.encoders.base import Encoder, EncoderNotAvailableError, NoTextTowerError
from domainknowledge.models.encoders.pretrained import (
    CONSE_TOP_T,
    ConSEEncoder,
    EfficientNetLiteEncoder,
    OpenClipEncoder,
    RawPixelEncoder,
    TorchvisionEncoder,
    conse_embedding,
    imagenet_class_names,
)
from domainknowledge.models.encoders.registry import (
    EncoderEntry,
    available_encoders,
    default_cache_dir,
    load_encoder,
    offline_encoder_names,
    registry_table,
    text_encoder_names,
)
from domainknowledge.models.encoders.standin_clip import (
    STANDIN_SIZES,
    dry_run_standin_config,
    StandInClipConfig,
    StandInClipEncoder,
    load_standin_clip,
    train_standin_clip,
)
from domainknowledge.models.encoders.zero_shot import (
    cached_embeddings,
    cached_image_embeddings,
    cached_text_embeddings,
    recall_at_k,
    recall_at_k_chance,
    zero_shot_classifier,
    zero_shot_logits,
    zero_shot_predict,
)

__all__ = ["CONSE_TOP_T", "STANDIN_SIZES", "dry_run_standin_config", "ConSEEncoder", "EfficientNetLiteEncoder", "Encoder", "EncoderEntry",
           "EncoderNotAvailableError", "NoTextTowerError", "OpenClipEncoder", "RawPixelEncoder", "StandInClipConfig",
           "StandInClipEncoder", "TorchvisionEncoder", "available_encoders", "cached_embeddings", "cached_image_embeddings",
           "cached_text_embeddings",
           "conse_embedding", "default_cache_dir", "imagenet_class_names", "load_encoder", "load_standin_clip", "offline_encoder_names",
           "recall_at_k", "recall_at_k_chance", "registry_table", "text_encoder_names", "train_standin_clip",
           "zero_shot_classifier", "zero_shot_logits", "zero_shot_predict"]
