"""A trained model to keep: ``vitnas train --out model.pt`` writes one, ``load_trained`` rebuilds
it, ``export_trained`` turns it into a ``torch.export`` program (``.pt2``) that runs without
vitnas.

The checkpoint holds only plain data (a ``state_dict`` of tensors, the architecture JSON, the
space's name and options, the training record), so ``torch.load(path, weights_only=True)``
reads it without running any code, and any framework can rebuild the model from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitnas.checkpoint import save as save_atomic
from vitnas.errors import ConfigError
from vitnas.paths import not_a_file
from vitnas.spaces import get_space
from vitnas.spaces.base import SearchSpace

FORMAT = "vitnas-trained-model"
VERSION = 1


@dataclass
class TrainedModel:
    model: nn.Module
    space: SearchSpace
    arch: Any
    meta: dict[str, Any]


def save_trained(path: str | Path, model: nn.Module, space: SearchSpace, arch: Any,
                 space_options: dict[str, Any], meta: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with everything needed to rebuild it. ``space_options``: the
    options ``space`` was made with (``get_space(space.name, **space_options)``)."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "space": space.name,
               "space_options": dict(space_options), "arch": space.to_json(arch),
               "state_dict": state, "meta": dict(meta or {}), "sha256": weights_digest(state)}
    try:
        return save_atomic(path, payload)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def load_trained(path: str | Path, device: str = "cpu") -> TrainedModel:
    """The model saved by ``save_trained`` (or ``vitnas train --out``), in eval mode."""
    if problem := not_a_file(path):
        raise ConfigError(f"trained model {path} {problem}")
    path = Path(path)
    if path.stat().st_size == 0:
        raise ConfigError(f"trained model {path} is empty")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise ConfigError(f"{path} is not a vitnas trained model, or is damaged (torch.load "
                          f"failed: {type(exc).__name__})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a vitnas trained model (no format {FORMAT!r})")
    for key, kind in (("space", str), ("space_options", dict), ("state_dict", dict),
                      ("meta", dict)):
        if not isinstance(checkpoint.get(key), kind):
            raise ConfigError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    version = checkpoint.get("version", VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or \
            not 1 <= version <= VERSION:
        raise ConfigError(f"{path}: trained-model version {version!r} is not one this vitnas "
                          f"reads (1 to {VERSION}); a newer vitnas wrote it?")
    if "arch" not in checkpoint:
        raise ConfigError(f"{path}: the trained model holds no architecture ('arch')")
    check_weights(path, checkpoint["state_dict"], checkpoint.get("sha256"))
    space = get_space(checkpoint["space"], **checkpoint["space_options"])
    arch = space.validate(checkpoint["arch"])
    model = space.build(arch)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:  # torch's first line names the model, the next the problem
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else "unknown mismatch"
        raise ConfigError(f"{path}: the weights do not fit the architecture: "
                          f"{detail[:240]}") from None
    return TrainedModel(model.to(device).eval(), space, arch, checkpoint["meta"])


MAX_EXPORT_BATCH = 65536  # the dynamic batch dimension's upper bound


def export_trained(path: str | Path, out: str | Path, batch_size: int | None = None) -> Path:
    """A ``torch.export`` program (``.pt2``) of the trained model at ``path``: load it anywhere
    with ``torch.export.load(out).module()``, no vitnas needed. It takes any batch size from 1
    to ``MAX_EXPORT_BATCH`` (traced at 2, so that 1 is not specialised into the graph), or only
    ``batch_size`` when one is given."""
    from vitnas.paths import check_writable

    out = Path(out)
    check_writable(out, "program", inputs=[path])  # before the work, not after it
    trained = load_trained(path)
    if batch_size is None:
        batch = torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)
        program = torch.export.export(trained.model, (trained.space.example_input(2),),
                                      dynamic_shapes=({0: batch},))
    else:
        program = torch.export.export(trained.model, (trained.space.example_input(batch_size),))
    temporary = out.with_name(f".{out.name}.partial.pt2")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(program, temporary)
        temporary.replace(out)  # atomic: a kill leaves the old file or the new one
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def check_weights(path: str | Path, state: dict, digest: str | None) -> None:
    """Refuse weights that are not all tensors, or that differ from the ``digest`` recorded
    when they were saved (None: a file from before the checksum, loaded unverified)."""
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ConfigError(f"{path}: its state_dict holds something other than named tensors")
    if any(v.is_floating_point() and not bool(torch.isfinite(v).all()) for v in state.values()):
        raise ConfigError(f"{path}: its weights hold NaN or infinity (a diverged or damaged "
                          f"model)")
    if digest is not None and digest != weights_digest(state):
        raise ConfigError(f"{path} is damaged: its weights do not match the checksum recorded "
                          f"when it was saved")


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state_dict's names, dtypes, shapes and bytes: recorded when a model is
    saved and checked when it is loaded, so a damaged file is named as damaged instead of
    running with flipped weights."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
