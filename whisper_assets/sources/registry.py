"""The registry of source kinds: every module of this package that defines a `SourceBase` subclass.

The settings schema (`DatasetSource`, a union discriminated by `kind`) and every dispatch are built from it, so
adding a kind means adding one module here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import Annotated, Union

from pydantic import Discriminator, Tag

import whisper_assets.sources as _package
from whisper_assets.sources.base import SourceBase


def _kind_name(cls: type[SourceBase]) -> str:
    return cls.model_fields["kind"].default


def _load_kinds() -> dict[str, type[SourceBase]]:
    for module in pkgutil.iter_modules(_package.__path__):
        importlib.import_module(f"{_package.__name__}.{module.name}")
    found: dict[str, type[SourceBase]] = {}
    pending = list(SourceBase.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if isinstance(_kind_name(cls), str):
            found[_kind_name(cls)] = cls
    return dict(sorted(found.items()))


SOURCE_KINDS: dict[str, type[SourceBase]] = _load_kinds()
DEFAULT_KIND = next(name for name, cls in SOURCE_KINDS.items() if cls.is_default)


def _discriminate(value: object) -> str | None:
    """Entries without `kind` are of the default kind (upload folders)."""
    return value.get("kind", DEFAULT_KIND) if isinstance(value, dict) else getattr(value, "kind", None)


DatasetSource = Annotated[
    Union[tuple(Annotated[cls, Tag(name)] for name, cls in SOURCE_KINDS.items())],  # noqa: UP007
    Discriminator(_discriminate),
]


def remote_sources(sources: Sequence[SourceBase]) -> list[SourceBase]:
    return [s for s in sources if s.remote]
