"""The files the ReViT pipeline hands from one step to the next, with one-line errors.

``revit train`` writes a ReViT checkpoint (config, weights, recipe, which training images it
left unseen); ``revit label`` a labels file (the unseen images' indices, every length's logits,
the labels); ``revit train-tla`` an assigner checkpoint (config, weights, calibrated knobs).
All are ``torch.save`` dicts tagged with a ``format`` string, loaded with ``weights_only``;
model files carry a SHA-256 of their weights (``vitnas.trained.weights_digest``), checked on
load, so a damaged file is named as damaged (files from before the digest still load).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vitnas.checkpoint import load, save
from vitnas.errors import ConfigError
from vitnas.revit.assigner import AssignerConfig, TokenLengthAssigner
from vitnas.revit.model import ResizableViT, ReViTConfig, build_revit
from vitnas.trained import check_weights, weights_digest

REVIT_FORMAT = "vitnas-revit"
LABELS_FORMAT = "vitnas-token-length-labels"
ASSIGNER_FORMAT = "vitnas-token-length-assigner"


def save_revit(path: str | Path, model: ResizableViT, config: ReViTConfig,
               meta: dict[str, Any]) -> Path:
    state = model.state_dict()
    return save(path, {"format": REVIT_FORMAT, "config": config.as_dict(), "state_dict": state,
                       "digest": weights_digest(state), "meta": meta})


def restore(path: str | Path, payload: dict[str, Any], what: str, parse: Any,
            build: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(module with the payload's weights, its config, meta); any way a tampered or foreign
    file can fail (missing keys, wrong types, impossible sizes) is one ConfigError."""
    for key, kind in (("config", dict), ("state_dict", dict), ("meta", dict)):
        if key not in payload:
            raise ConfigError(f"{path}: {what} file has no {key!r}")
        if not isinstance(payload[key], kind):
            raise ConfigError(f"{path}: the {what} file's {key!r} is a "
                              f"{type(payload[key]).__name__}, not a mapping")
    state = payload["state_dict"]
    check_weights(path, state, payload.get("digest"))
    try:
        config = parse(payload["config"])
        module = build(config)
        module.load_state_dict(state)
        meta = payload["meta"]
    except KeyError as exc:
        raise ConfigError(f"{path}: {what} file has no {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: its {what} config cannot build a model ({exc})") from None
    except RuntimeError as exc:
        raise ConfigError(f"{path}: weights do not fit its {what} config") from exc
    return module.eval(), config, meta


def load_revit(path: str | Path) -> tuple[ResizableViT, ReViTConfig, dict[str, Any]]:
    return restore(path, load(path, REVIT_FORMAT), "ReViT", ReViTConfig.from_dict, build_revit)


def model_identity(model: torch.nn.Module) -> str:
    """What a labels or assigner file records of the ReViT it came from: the digest of its
    weights, which names the model wherever its file lies and whatever it is called (a path
    names another model from another directory, and the same one given another way)."""
    return weights_digest(model.state_dict())


def shown_path(path: str | Path) -> str:
    """A file as a message names it from any directory: its absolute path."""
    return str(Path(path).resolve())


def save_labels(path: str | Path, payload: dict[str, Any]) -> Path:
    return save(path, {"format": LABELS_FORMAT, **payload})


def load_labels(path: str | Path) -> dict[str, Any]:
    payload = load(path, LABELS_FORMAT)
    for key in ("indices", "logits", "targets", "labels"):
        if key not in payload:
            raise ConfigError(f"{path}: labels file has no {key!r}")
        if not isinstance(payload[key], torch.Tensor):
            raise ConfigError(f"{path}: the labels file's {key!r} is a "
                              f"{type(payload[key]).__name__}, not a tensor")
    count = len(payload["indices"])
    logits = payload["logits"]
    if (logits.ndim != 3 or logits.shape[1] != count
            or any(len(payload[k]) != count for k in ("targets", "labels"))):
        raise ConfigError(f"{path}: the labels file's indices, logits (lengths x images x "
                          f"classes), targets and labels disagree in size (tampered or damaged)")
    if not isinstance(payload.get("meta", {}), dict):
        raise ConfigError(f"{path}: the labels file's 'meta' is not a mapping")
    return payload


def save_assigner(path: str | Path, assigner: TokenLengthAssigner,
                  meta: dict[str, Any]) -> Path:
    state = assigner.state_dict()
    return save(path, {"format": ASSIGNER_FORMAT, "config": assigner.config.as_dict(),
                       "state_dict": state, "digest": weights_digest(state), "meta": meta})


def load_assigner(path: str | Path) -> tuple[TokenLengthAssigner, dict[str, Any]]:
    payload = load(path, ASSIGNER_FORMAT)
    weights, config = payload.get("state_dict"), payload.get("config")
    if isinstance(weights, dict) and isinstance(config, dict):
        # files from before Platt scaling existed: identity calibration
        count = config.get("num_lengths", 3)
        if isinstance(count, int) and count > 0:
            weights.setdefault("platt_scale", torch.ones(count))
            weights.setdefault("platt_shift", torch.zeros(count))
    assigner, _, meta = restore(path, payload, "assigner", AssignerConfig.from_dict,
                                TokenLengthAssigner)
    return assigner, meta
