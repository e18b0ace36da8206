"""Options shared by several commands, defined once so that two commands with the same flag cannot drift.

Each alias is a typer `Annotated` type: the flag's names and help live here, the default stays with the
command (`resamples: Resamples = 200`). `finetune` and `transfer` take every training option through
`with_training_options`, which adds them to a command's signature and hands them over as one dict.
"""

import functools
import inspect
from typing import Annotated

import typer

from pedclip.config import RUNTIME_ENV

MODEL_HELP = "model spec, e.g. openclip:ViT-B-32-quickgelu/openai or demo:clip (see `pedclip models list`)"

Model = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)]
Dataset = Annotated[str, typer.Option("--dataset", "-d", help="dataset name (see `pedclip data list`)")]
Weights = Annotated[
    str | None,
    typer.Option(
        "--weights",
        help="local weights for --model: a file or folder (state dict, safetensors, OpenAI JIT, MedCLIP zip)",
    ),
]
Device = Annotated[str | None, typer.Option("--device", help="torch device, e.g. cpu or cuda:0")]
Dtype = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="fp32 | bf16 (weights cast, not autocast; refused on a CPU without bf16 hardware)"
        " | int8 (ONNX Runtime dynamic quantisation: approximate, its own fingerprint)",
    ),
]
Runtime = Annotated[
    str,
    typer.Option(
        "--runtime",
        envvar=RUNTIME_ENV,
        help="what runs the model: auto (ONNX Runtime on a CPU when installed, else torch) | torch | onnx;"
        " fp32 vectors are the same either way",
    ),
]
Split = Annotated[str, typer.Option("--split", help="split(s) to evaluate, e.g. test or all")]
Protocol = Annotated[
    str,
    typer.Option(
        "--protocol",
        help="sound: select on val AUROC, 'pneumonia' prompts | paper: the study's choices, 'covid' prompts",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="random seed (same seed, same result)")]
Resamples = Annotated[int, typer.Option("--resamples", help="bootstrap resamples for CIs (0: none)")]
NoSave = Annotated[bool, typer.Option("--no-save", help="do not write the run to the store")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON document")]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="image decoders: threads between batches on a CPU (default: all cores), processes beside a GPU "
        "(default: half the cores); 0: the main thread",
    ),
]
PRECISION_HELP = (
    "auto (paper CLIP: fp16-master; else bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16 (autocast, fp32 "
    "masters) | fp16-master (the study's CLIP: weights rounded to fp16 after every Adam step)"
)
MaxFlips = Annotated[int, typer.Option("--max-flips", help="flipped cases to list")]
Seeds = Annotated[
    str | None,
    typer.Option(
        "--seeds", help="one run per training seed, e.g. 0,1,2, linked by a group id (overrides --seed)"
    ),
]
Tune = Annotated[
    bool,
    typer.Option(
        "--tune", help="fine-tune at each point of a small lr x weight-decay grid, keep the best on val AUROC"
    ),
]
TuneLr = Annotated[
    str | None,
    typer.Option("--tune-lr", help="--tune's learning rates, comma-separated (default 1e-5,3e-5,1e-4)"),
]
TuneWd = Annotated[
    str | None, typer.Option("--tune-wd", help="--tune's weight decays, comma-separated (default 1e-4,1e-2)")
]


AllowLeakage = Annotated[
    bool,
    typer.Option(
        "--allow-leakage",
        help="run the sound protocol even when `pedclip data audit` finds patients or images across splits",
    ),
]


def _training_parameters() -> list[inspect.Parameter]:
    """Every fine-tuning flag as a keyword parameter (name = FinetuneConfig field, default = the CLI's)."""
    loss_help = (
        "clip: the study's hard-target loss | semantic: MedCLIP's loss, targets softmax(label similarity) | "
        "supcon: uniform targets over same-label pairs (default: semantic with --protocol sound, clip with paper)"
    )
    options = [
        ("weights", Weights, None),
        ("loss", Annotated[str | None, typer.Option("--loss", help=loss_help)], None),
        (
            "text",
            Annotated[
                str,
                typer.Option(
                    "--text", help="prompts: each image's class prompt | reports: each case's report"
                ),
            ],
            "prompts",
        ),
        (
            "trainable",
            Annotated[
                str,
                typer.Option(
                    "--trainable", help="all | last-N (last N blocks of each tower + heads) | projection"
                ),
            ],
            "all",
        ),
        ("epochs", Annotated[int, typer.Option("--epochs")], 50),
        (
            "patience",
            Annotated[int | None, typer.Option("--patience", help="epochs without improvement (default 20)")],
            None,
        ),
        ("batch_size", Annotated[int, typer.Option("--batch-size")], 256),
        (
            "micro_batch",
            Annotated[
                int | None, typer.Option("--micro-batch", help="images per forward (exact accumulation)")
            ],
            None,
        ),
        ("lr", Annotated[float, typer.Option("--lr")], 1e-5),
        (
            "weight_decay",
            Annotated[
                float | None,
                typer.Option(
                    "--weight-decay", help="weight decay (default: the study's per family and dataset)"
                ),
            ],
            None,
        ),
        (
            "grad_clip",
            Annotated[
                float | None,
                typer.Option("--grad-clip", help="max gradient norm (default 1.0 MedCLIP; 0 off)"),
            ],
            None,
        ),
        ("protocol", Protocol, "sound"),
        (
            "device",
            Annotated[
                str | None, typer.Option("--device", help="torch device (default cuda when available)")
            ],
            None,
        ),
        ("precision", Annotated[str, typer.Option("--precision", help=PRECISION_HELP)], "auto"),
        ("seed", Seed, 0),
        (
            "reembed",
            Annotated[
                list[str] | None,
                typer.Option(
                    "--reembed", help="also embed this dataset with the fine-tuned model (repeatable)"
                ),
            ],
            None,
        ),
        (
            "embed_workers",
            Annotated[int | None, typer.Option("--workers", help=Workers.__metadata__[0].help)],
            None,
        ),
        ("allow_leakage", AllowLeakage, False),
    ]
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
        for name, annotation, default in options
    ]


TRAINING_PARAMETERS = _training_parameters()


def with_training_options(command):
    """`command(..., training: dict)` becomes a typer command taking every fine-tuning flag.

    The flags come after the command's own; their values reach `command` as `training`, keyed by
    `FinetuneConfig` field, so `finetune` and `transfer` accept exactly the same training options.
    """
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "training"]
    names = [p.name for p in TRAINING_PARAMETERS]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        training = {name: kwargs.pop(name) for name in names}
        training["reembed"] = tuple(training["reembed"] or ())
        return command(*args, training=training, **kwargs)

    parameters = own + TRAINING_PARAMETERS
    wrapper.__signature__ = inspect.Signature(parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__  # typer must read the new signature, not the wrapped one
    return wrapper
