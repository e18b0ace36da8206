"""`pedclip models ...`: the model specs the registry knows and whether their weights are here."""

from __future__ import annotations

import typer

from pedclip.cli.common import emit_json, load_model, print_table, state
from pedclip.cli.options import AsJson, Device, Dtype, Runtime, Weights

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_command(
    ctx: typer.Context,
    weights: Weights = None,
    as_json: AsJson = False,
) -> None:
    """Every spec family, what each needs, and whether its weights are on disk."""
    from pedclip.models import list_specs

    rows = list_specs(weights=weights, home=state(ctx).home)
    if as_json:
        emit_json({"specs": rows})
    else:
        print_table(rows, title="model specs")


@app.command("show")
def show_command(
    ctx: typer.Context,
    spec: str = typer.Argument(..., help="e.g. openclip:ViT-B-32-quickgelu/openai, medclip:vit, local:DIR"),
    weights: Weights = None,
    dtype: Dtype = "fp32",
    device: Device = "cpu",
    runtime: Runtime = "auto",
    as_json: AsJson = False,
) -> None:
    """Load a spec and print its fingerprint, dimension, preprocessing, dtype and weights identity."""
    encoder = load_model(ctx, spec, weights=weights, device=device, dtype=dtype, runtime=runtime)
    document = {
        **encoder.describe(),
        "logit_scale": encoder.logit_scale,
        "device": encoder.device,
        "runtime": encoder.runtime,
    }
    if as_json:
        emit_json(document)
        return
    for key, value in document.items():
        typer.echo(f"{key:>18}: {value}")
