"""Seed a model from the classic YOLOv5 checkpoint without executing its pickled code.

The checkpoint is a pickled ``models.yolo.Model`` from the YOLOv5 code base. Unpickling it normally
imports and runs that code. Here every class the pickle names is replaced by an inert stub that only
records its state, except the few torch functions that rebuild tensors; then the module tree is walked
to collect parameters and buffers by their dotted names.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

# The only callables a checkpoint may make us run: tensor/storage rebuilding and plain containers.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("copyreg", "_reconstructor"): None,  # handled below: builds a stub, never calls user code
}
for _dtype in ("Half", "Float", "Double", "Long", "Int", "Short", "Char", "Byte", "Bool", "BFloat16"):
    _ALLOWED[("torch", f"{_dtype}Storage")] = getattr(torch, f"{_dtype}Storage")


class _Stub:
    """Stand-in for any pickled class: keeps constructor args and state, runs nothing."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stub_class(module: str, name: str) -> type[_Stub]:
    return type(name, (_Stub,), {"qualname": f"{module}.{name}"})


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    if isinstance(cls, type) and issubclass(cls, _Stub):
        return cls()
    raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("copyreg", "_reconstructor"):
            return _reconstructor
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        return _stub_class(module, name)


_restricted_pickle = ModuleType("restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
_restricted_pickle.load = pickle.load  # type: ignore[attr-defined]  # torch checks it exists


def load_yolov5_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Flat ``name -> tensor`` of the model in a classic YOLOv5 checkpoint, as float32."""
    checkpoint = torch.load(
        str(path), map_location="cpu", pickle_module=_restricted_pickle, weights_only=False
    )
    root = checkpoint.get("ema") or checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if root is None:
        raise ValueError(f"{path}: expected a dict with 'model' or 'ema', got {type(checkpoint)}")
    tensors: dict[str, torch.Tensor] = {}
    _collect(root, "", tensors)
    if not tensors:
        raise ValueError(f"{path}: no tensors found in the pickled model")
    return tensors


def _collect(node: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = getattr(node, "state", None)
    if not isinstance(state, dict):
        return
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if isinstance(value, torch.Tensor):
                out[f"{prefix}{name}"] = value.detach().float()
    for name, child in (state.get("_modules") or {}).items():
        _collect(child, f"{prefix}{name}.", out)


def transfer(source: dict[str, torch.Tensor], model: torch.nn.Module) -> tuple[int, int]:
    """Copy every tensor whose name and shape match into ``model``; returns (copied, total)."""
    target = model.state_dict()
    matched = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    target.update(matched)
    model.load_state_dict(target)
    return len(matched), len(target)
