"""`Workspace`: what an interactive session owns and passes on: the store handle, the loaded encoders, the
image matrices and the text vectors. No module keeps such state; a dashboard holds one workspace per home,
a CLI command builds one for its own lifetime."""

from __future__ import annotations

from dataclasses import dataclass, field

from pedclip.embed.text import TextVectorCache
from pedclip.eval.prompts import PromptSet
from pedclip.eval.rescore import ImageMatrixCache, RescoreResult, persist_prompts, rescore
from pedclip.store import Store


@dataclass
class Workspace:
    store: Store
    images: ImageMatrixCache = field(default_factory=ImageMatrixCache)
    texts: TextVectorCache = field(default_factory=TextVectorCache)
    encoders: dict = field(default_factory=dict)  # spec -> loaded Encoder

    def encoder(self, spec: str, loader):
        """The encoder of `spec`, loaded once with `loader(spec)`."""
        if spec not in self.encoders:
            self.encoders[spec] = loader(spec)
        return self.encoders[spec]

    def rescore(self, encoder, dataset: str, prompts, **options) -> RescoreResult:
        """`pedclip.eval.rescore.rescore` with this workspace's store and caches."""
        return rescore(
            self.store, encoder, dataset, prompts, cache=self.images, text_cache=self.texts, **options
        )

    def persist_prompts(self, encoder, prompt_set: PromptSet) -> None:
        """Write a prompt set's vectors (already encoded here) to the store's text cache."""
        persist_prompts(self.store, encoder, prompt_set, self.texts)
