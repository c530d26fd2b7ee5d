"""Small dataset wrappers shared by the recipe runners."""

from __future__ import annotations

from typing import Any

__all__ = ["RenamedKeys"]


class RenamedKeys:
    """Expose items of ``dataset`` with keys renamed by ``mapping`` (``{item key: model key}``),
    e.g. a modality type's key under the model's own modality key."""

    def __init__(self, dataset: Any, mapping: dict[str, str]) -> None:
        self.dataset, self.mapping = dataset, dict(mapping)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def targets(self) -> Any:
        """The wrapped dataset's labels (AttributeError if it has none), so label lookups need not
        load every item."""
        return self.dataset.targets

    def __getitem__(self, i: Any) -> dict:
        item = dict(self.dataset[i])
        moved = {dst: item.pop(src) for src, dst in self.mapping.items()}
        item.update(moved)
        return item
