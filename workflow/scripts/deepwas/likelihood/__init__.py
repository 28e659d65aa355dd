"""Per-window DeepWAS likelihood (paper Sec. 4, App. C.1), one module per solver behind one interface.

Every factor-based solver is a callable `solver(phi, s2, G, y, lam) -> NLL_i(phi)` (a 0-d tensor,
differentiable in phi). `get_solver(name, **options)` returns one by the name used in the config.
`nll_null` is exact and shared by all solvers. `mismatch` handles LD that is not the statistics' own: the
finite-panel correction of a reference panel's spectrum, and R~ = (1 - lambda) R + lambda I; both are any solver
on `mismatch.regularise`'s factors.
"""
from __future__ import annotations

from typing import Callable

from . import exact, mismatch
from .exact import nll_null

Solver = Callable[..., "torch.Tensor"]  # noqa: F821

_REGISTRY: dict[str, Callable[..., Solver]] = {
    "exact": lambda **_: exact.nll,
}


def register(name: str, factory: Callable[..., Solver]) -> None:
    """Register a solver factory; `factory(**options)` returns a solver callable."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    _load_optional()
    return sorted(_REGISTRY)


def get_solver(name: str = "exact", **options) -> Solver:
    _load_optional()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown likelihood solver {name!r}; choose one of {sorted(_REGISTRY)}") from None
    return factory(**options)


def _load_optional() -> None:
    """Import solver modules that register themselves (kept lazy so `exact` never pays for them)."""
    import importlib

    for mod in ("iterative",):
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{mod}":
                raise


__all__ = ["get_solver", "register", "available", "nll_null", "exact", "mismatch"]
