"""Convert a CTranslate2 Whisper model directory into an openai-whisper checkpoint.

Both libraries run the same network; only names and CTranslate2's fused attention
projections differ, so the bundled CTranslate2 models can feed openai-whisper too.
"""

import json
import os
import re
import struct
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import numpy
import torch
import whisper
from whisper.model import ModelDimensions, Whisper

# CTranslate2 dtype codes 0..4 (f32, i8, i16, i32, f16); code 5 (bf16) is done by hand.
_DTYPES = ["<f4", "i1", "<i2", "<i4", "<f2"]


def _read(f: BinaryIO, fmt: str) -> tuple:
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))  # struct.error if truncated


def _read_string(f: BinaryIO) -> str:
    (length,) = _read(f, "<H")  # counts the trailing NUL
    return f.read(length)[:-1].decode("utf-8")


def read_ct2_model(model_bin: Path) -> dict[str, numpy.ndarray]:
    """Variables of a CTranslate2 model.bin by name; an alias maps to its target."""
    variables: dict[str, numpy.ndarray] = {}
    with open(model_bin, "rb") as f:
        (version,) = _read(f, "<I")
        spec = _read_string(f)
        if version < 5 or spec != "WhisperSpec":
            raise ValueError(f"unsupported CTranslate2 model: {spec!r} v{version}")
        _read(f, "<I")  # spec revision; the variable layout does not depend on it
        for _ in range(_read(f, "<I")[0]):
            name = _read_string(f)
            (rank,) = _read(f, "<B")
            shape = _read(f, f"<{rank}I")
            code, nbytes = _read(f, "<BI")
            raw = f.read(nbytes)
            if code == 5:  # bfloat16 is the upper half of a float32
                bits = numpy.frombuffer(raw, "<u2").astype(numpy.uint32) << 16
                array = bits.view(numpy.float32)
            elif code < len(_DTYPES):
                array = numpy.frombuffer(raw, _DTYPES[code])
            else:
                raise ValueError(f"unknown dtype code {code} for {name}")
            variables[name] = array.reshape(shape)
        for _ in range(_read(f, "<I")[0]):
            alias, target = _read_string(f), _read_string(f)
            variables[alias] = variables[target]
    return variables


def _state_dict(v: dict[str, numpy.ndarray], dims: ModelDimensions) -> dict:
    """openai-whisper state dict (float16 tensors) from CTranslate2 variables."""
    out: dict[str, numpy.ndarray] = {}
    used = {"decoder/projection/weight"}  # must be tied to the embedding; checked below

    def get(name: str) -> numpy.ndarray:
        used.update((name, name + "_scale"))
        if name + "_scale" not in v:
            return v[name]
        # Quantized: q = x * scale, per output row (int8) or one scalar (int16).
        scale = v[name + "_scale"].astype(numpy.float32)
        scale = scale.reshape(scale.shape + (1,) * (v[name].ndim - scale.ndim))
        return v[name].astype(numpy.float32) / scale

    def linear(dst: str, src: str, weight: str = "weight", bias: str = "bias") -> None:
        out[dst + ".weight"] = get(f"{src}/{weight}")
        out[dst + ".bias"] = get(f"{src}/{bias}")

    def norm(dst: str, src: str) -> None:
        linear(dst, src, "gamma", "beta")

    def fused(dst: str, names: list[str], src: str) -> None:
        # Fused projections are stacked along the output axis. openai-whisper's key has
        # no bias; CTranslate2 stores zeros (a key bias cancels in the softmax anyway).
        weights = numpy.split(get(src + "/weight"), len(names))
        biases = numpy.split(get(src + "/bias"), len(names))
        for name, w, b in zip(names, weights, biases, strict=True):
            out[f"{dst}.{name}.weight"] = w
            if name != "key":
                out[f"{dst}.{name}.bias"] = b

    def block(dst: str, src: str, cross: bool) -> None:
        fused(f"{dst}.attn", ["query", "key", "value"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        if cross:
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            fused(f"{dst}.cross_attn", ["key", "value"], f"{src}/attention/linear_1")
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    out["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    for i in range(dims.n_audio_layer):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")
    out["decoder.token_embedding.weight"] = get("decoder/embeddings/weight")
    out["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for i in range(dims.n_text_layer):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")

    embedding = v["decoder/embeddings/weight"]  # openai-whisper's output projection
    if v.get("decoder/projection/weight", embedding) is not embedding:
        raise ValueError("decoder/projection/weight is not tied to the token embedding")
    # Scalars (num_heads, pre_norm, activation, ...) are metadata; any other leftover is
    # a weight this converter does not know, and dropping it would change the model.
    if unused := sorted(k for k, a in v.items() if k not in used and a.ndim > 0):
        raise ValueError(f"unconverted CTranslate2 variables: {unused}")
    # astype copies, so the tensors do not share the read-only file buffers.
    state = {k: torch.from_numpy(a.astype(numpy.float16)) for k, a in out.items()}
    # The check load_model will make: every key present, no extras, every shape right.
    # (A meta-device model would be cheaper, but Whisper.__init__ calls to_sparse.)
    Whisper(dims).load_state_dict(state, strict=True)
    return state


def _count_layers(v: dict[str, numpy.ndarray], prefix: str) -> int:
    # A bare "layer_" prefix would also match "layer_norm".
    pattern = re.compile(rf"{prefix}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for m in map(pattern.match, v) if m)


def convert(model_dir: Path, out_file: Path) -> Path:
    """Write an openai-whisper checkpoint for the CTranslate2 model in model_dir."""
    model_dir, out_file = Path(model_dir), Path(out_file)
    v = read_ct2_model(model_dir / "model.bin")
    config = json.loads((model_dir / "config.json").read_text())
    conv1, embedding = v["encoder/conv1/weight"], v["decoder/embeddings/weight"]
    dims = ModelDimensions(
        n_mels=conv1.shape[1],
        n_audio_ctx=v["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=conv1.shape[0],
        n_audio_head=int(v["encoder/num_heads"]),
        n_audio_layer=_count_layers(v, "encoder"),
        n_vocab=embedding.shape[0],
        n_text_ctx=v["decoder/position_encodings/encodings"].shape[0],
        n_text_state=embedding.shape[1],
        n_text_head=int(v["decoder/num_heads"]),
        n_text_layer=_count_layers(v, "decoder"),
    )
    heads = [[int(i), int(h)] for i, h in config.get("alignment_heads", [])]
    n_layer, n_head = dims.n_text_layer, dims.n_text_head
    if any(not (0 <= i < n_layer and 0 <= h < n_head) for i, h in heads):
        raise ValueError(f"alignment heads out of range: {heads}")
    state = _state_dict(v, dims)
    ckpt = {"dims": asdict(dims), "model_state_dict": state, "alignment_heads": heads}
    # Write beside the target, then rename: a crash never leaves a truncated checkpoint.
    # (Not mkstemp: its files are mode 0600, a plain open honours the umask.)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f"{out_file.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out_file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_file


def load_converted(path: Path, device: str = "cpu") -> whisper.model.Whisper:
    """Load a converted checkpoint, with the alignment heads word timestamps rely on."""
    model = whisper.load_model(str(path), device=device)
    # load_model sets alignment heads only for its own downloads and the buffer is not
    # persistent, so take them from the checkpoint; mmap avoids reading weights twice.
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if heads := ckpt.get("alignment_heads"):
        # The default buffer already has the (n_text_layer, n_text_head) shape and device.
        mask = torch.zeros_like(model.alignment_heads.to_dense())
        mask[tuple(torch.tensor(heads).T)] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model
