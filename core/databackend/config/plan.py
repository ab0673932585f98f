"""The result of loading a config: validated entries in build order, plus warnings."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs

from databackend.config.models import (
    BaseBackendConfig,
    ImageBackendConfig,
    ImageEmbedBackendConfig,
    TextEmbedBackendConfig,
)
from databackend.config.settings import DatasetSettings, resolve_settings
from databackend.options import FactoryOptions

__all__ = ["DataPlan"]


@attrs.frozen(kw_only=True)
class DataPlan:
    """Validated entries, in dependency order, with the factory options they were checked with."""

    entries: tuple[BaseBackendConfig, ...]
    options: FactoryOptions
    warnings: tuple[str, ...] = ()
    source: str | None = None
    #: Each dataset's effective settings (its keys over the factory options), by id: resolved
    #: once when the plan is made (:func:`DataPlan.resolved`).
    settings: Mapping[str, DatasetSettings] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def resolved(cls, entries: tuple[BaseBackendConfig, ...], options: FactoryOptions,
                 **kw: object) -> DataPlan:
        """A plan with :attr:`settings` resolved for every dataset."""
        plan = cls(entries=entries, options=options, **kw)  # type: ignore[arg-type]
        return attrs.evolve(plan, settings=MappingProxyType(
            {d.id: plan._resolve(d) for d in plan.datasets}))

    def _resolve(self, dataset: ImageBackendConfig) -> DatasetSettings:
        embeds = self.by_id.get(dataset.image_embeds) if dataset.image_embeds else None
        return resolve_settings(dataset, self.options,
                                embeds if isinstance(embeds, ImageEmbedBackendConfig) else None)

    def settings_for(self, dataset: ImageBackendConfig) -> DatasetSettings:
        """The dataset's effective settings (resolved now for a plan made by hand)."""
        found = self.settings.get(dataset.id)
        return found if found is not None and self.by_id.get(dataset.id) is dataset \
            else self._resolve(dataset)

    @property
    def text_embeds(self) -> tuple[TextEmbedBackendConfig, ...]:
        """Text-embedding caches."""
        return tuple(e for e in self.entries if isinstance(e, TextEmbedBackendConfig))

    @property
    def image_embeds(self) -> tuple[ImageEmbedBackendConfig, ...]:
        """Image-embedding (VAE latent) storage entries."""
        return tuple(e for e in self.entries if isinstance(e, ImageEmbedBackendConfig))

    @property
    def datasets(self) -> tuple[ImageBackendConfig, ...]:
        """Training datasets (image, video, conditioning, eval), sources before conditioning."""
        return tuple(e for e in self.entries if isinstance(e, ImageBackendConfig))

    @property
    def by_id(self) -> Mapping[str, BaseBackendConfig]:
        """Entries by id."""
        return MappingProxyType({e.id: e for e in self.entries})

    def default_text_embeds(self) -> TextEmbedBackendConfig | None:
        """The ``default`` text-embed cache (the only one if there is just one)."""
        texts = self.text_embeds
        marked = [t for t in texts if t.default]
        return marked[0] if marked else (texts[0] if texts else None)

    def text_embeds_for(self, dataset: ImageBackendConfig) -> TextEmbedBackendConfig | None:
        """The text-embed cache a dataset uses."""
        if dataset.text_embeds:
            found = self.by_id.get(dataset.text_embeds)
            return found if isinstance(found, TextEmbedBackendConfig) else None
        return self.default_text_embeds()
