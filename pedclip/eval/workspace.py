"""`Workspace`: what an interactive session owns and passes on: the store handle, the loaded encoders, the
image matrices and the text vectors. No module keeps such state; a dashboard holds one workspace per home,
a CLI command builds one for its own lifetime."""

from __future__ import annotations

from dataclasses import dataclass, field

from pedclip.embed.text import TextVectorCache
from pedclip.eval.prompt_effects import PromptEffects, prompt_effects
from pedclip.eval.prompts import PromptSet
from pedclip.eval.protocols import get_protocol
from pedclip.eval.rescore import ImageMatrixCache, RescoreResult, cached_loader, persist_prompts, rescore
from pedclip.eval.zeroshot import prompt_vectors
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

    def prompt_effects(
        self, encoder, dataset: str, prompt_set: PromptSet, split: str = "val"
    ) -> PromptEffects:
        """Each prompt's leave-one-out effect on `split`'s AUROC and the prompts' map, from cached vectors
        (a smaller group is re-embedded only for models whose prompt vectors depend on their group)."""
        load, _ = cached_loader(self.store, encoder, dataset, get_protocol("sound"), self.images)

        def embed(texts):
            return self.texts.vectors(encoder, texts)

        return prompt_effects(load, encoder, prompt_vectors(prompt_set, embed), split, embed)
