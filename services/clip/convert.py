"""Save an open_clip CLIP as a Hugging Face `CLIPModel` folder (weights, config, BPE tokenizer files).

Both layouts are what users download (laion/* on the hub ships both); converting ours lets a test prove
that the two loaders give the same embeddings for the same weights. The state-dict mapping follows
transformers' own `convert_clip_original_pytorch_to_hf.py`; tokenizer files are built from the BPE
merges that open_clip ships, the same vocabulary the OpenAI CLIP tokenizer uses.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import torch

_BLOCK = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def _blocks(state: dict[str, torch.Tensor], src: str, dst: str, layers: int) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for i in range(layers):
        s, d = f"{src}.{i}", f"{dst}.{i}"
        for a, b in _BLOCK.items():
            for p in ("weight", "bias"):
                out[f"{d}.{b}.{p}"] = state[f"{s}.{a}.{p}"]
        for name, part in zip("qkv", state[f"{s}.attn.in_proj_weight"].chunk(3), strict=True):
            out[f"{d}.self_attn.{name}_proj.weight"] = part
        for name, part in zip("qkv", state[f"{s}.attn.in_proj_bias"].chunk(3), strict=True):
            out[f"{d}.self_attn.{name}_proj.bias"] = part
    return out


def hf_state_dict(state: dict[str, torch.Tensor], cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    out = {
        "logit_scale": state["logit_scale"],
        "text_projection.weight": state["text_projection"].T,
        "visual_projection.weight": state["visual.proj"].T,
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_model.final_layer_norm.weight": state["ln_final.weight"],
        "text_model.final_layer_norm.bias": state["ln_final.bias"],
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
    }
    out |= _blocks(state, "transformer.resblocks", "text_model.encoder.layers", text["layers"])
    out |= _blocks(state, "visual.transformer.resblocks", "vision_model.encoder.layers", vision["layers"])
    return {k: v.contiguous().clone() for k, v in out.items()}


def hf_config(cfg: dict[str, Any]) -> Any:
    from transformers import CLIPConfig

    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    act = "quick_gelu" if cfg.get("quick_gelu") else "gelu"
    return CLIPConfig(
        projection_dim=cfg["embed_dim"],
        text_config={
            "vocab_size": text["vocab_size"],
            "hidden_size": text["width"],
            "intermediate_size": int(text["width"] * text.get("mlp_ratio", 4.0)),
            "num_attention_heads": text["heads"],
            "num_hidden_layers": text["layers"],
            "max_position_embeddings": text["context_length"],
            "hidden_act": act,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        vision_config={
            "hidden_size": vision["width"],
            "intermediate_size": int(vision["width"] * vision.get("mlp_ratio", 4.0)),
            "num_attention_heads": vision["width"] // vision.get("head_width", 64),
            "num_hidden_layers": vision["layers"],
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "hidden_act": act,
        },
    )


def write_bpe_tokenizer(out_dir: Path, context_length: int) -> None:
    """vocab.json + merges.txt in the exact order open_clip's SimpleTokenizer builds its vocabulary."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as f:
        merges = f.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    pairs = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(p) for p in pairs]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (out_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in pairs) + "\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special))
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "CLIPTokenizer", "model_max_length": context_length, **special})
    )


def save_hf(
    state: dict[str, torch.Tensor], cfg: dict[str, Any], out_dir: Path, mean: tuple[float, ...], std: tuple[float, ...]
) -> Path:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    config = hf_config(cfg)
    config.save_pretrained(out_dir)
    save_file(hf_state_dict(state, cfg), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    write_bpe_tokenizer(out_dir, cfg["text_cfg"]["context_length"])
    size = cfg["vision_cfg"]["image_size"]
    (out_dir / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "CLIPImageProcessor",
                "image_mean": list(mean),
                "image_std": list(std),
                "size": {"shortest_edge": size},
                "crop_size": {"height": size, "width": size},
                "do_resize": True,
                "do_center_crop": True,
                "do_normalize": True,
                "resample": 3,
            }
        )
    )
    return out_dir
