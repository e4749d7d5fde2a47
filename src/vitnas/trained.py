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

from vitnas.errors import ConfigError
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    checkpoint = {"format": FORMAT, "version": VERSION, "space": space.name,
                  "space_options": dict(space_options), "arch": space.to_json(arch),
                  "state_dict": state, "meta": dict(meta or {})}
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(checkpoint, tmp)
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def load_trained(path: str | Path, device: str = "cpu") -> TrainedModel:
    """The model saved by ``save_trained`` (or ``vitnas train --out``), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"trained model {path} not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise ConfigError(f"{path} is not a vitnas trained model: {exc}".splitlines()[0]
                          ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a vitnas trained model (no format {FORMAT!r})")
    for key, kind in (("space", str), ("space_options", dict), ("state_dict", dict),
                      ("meta", dict)):
        if not isinstance(checkpoint.get(key), kind):
            raise ConfigError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    space = get_space(checkpoint["space"], **checkpoint["space_options"])
    arch = space.validate(checkpoint.get("arch"))
    model = space.build(arch)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise ConfigError(f"{path}: the weights do not fit the architecture: "
                          f"{str(exc).splitlines()[0]}") from None
    return TrainedModel(model.to(device).eval(), space, arch, checkpoint["meta"])


def export_trained(path: str | Path, out: str | Path, batch_size: int = 1) -> Path:
    """A ``torch.export`` program (``.pt2``) of the trained model at ``path``: load it anywhere
    with ``torch.export.load(out).module()``, no vitnas needed. The batch size is fixed."""
    trained = load_trained(path)
    example = (trained.space.example_input(batch_size),)
    program = torch.export.export(trained.model, example)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, out)
    return out
