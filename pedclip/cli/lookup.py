"""Case lookup commands: search (films by words), case (one case's card) and export (parquet for other tools)."""

from __future__ import annotations

from dataclasses import replace

import typer

from pedclip.cli.common import emit_json, load_model, print_table, state
from pedclip.cli.options import AsJson, Dataset, Model, Runtime, Weights
from pedclip.errors import PedclipError


def _verdict_cell(verdicts: list[dict]) -> str:
    """`2/3 right` for a hit's run verdicts (or `no runs`)."""
    known = [v for v in verdicts if v.get("wrong") is not None]
    if not verdicts:
        return "no runs"
    return f"{sum(not v['wrong'] for v in known)}/{len(known)} right" if known else f"{len(verdicts)} runs"


def _query(store, dataset: str, text: str | None, prompts: str | None, cls: str | None, report: str | None):
    from pedclip.eval.prompts import load_prompt_set
    from pedclip.eval.search import prompt_set_query, report_query, words_query

    given = [x for x in (text, prompts, report) if x]
    if len(given) != 1:
        raise PedclipError("give exactly one query: WORDS, --prompts SET [--class NAME] or --report CASE_ID")
    if prompts:
        return prompt_set_query(load_prompt_set(prompts, store.paths.home), cls)
    if report:
        return report_query(store, dataset, report)
    return words_query(text, cls)


def search(
    ctx: typer.Context,
    text: str = typer.Argument(None, help="words to search for, e.g. 'right lower lobe consolidation'"),
    model: Model = ...,
    dataset: Dataset = ...,
    k: int = typer.Option(24, "--k", "-k", help="how many films"),
    prompts: str = typer.Option(None, "--prompts", "-p", help="search with a prompt set's class (mean)"),
    cls: str = typer.Option(
        None, "--class", help="the class the query describes (precision at k counts it; default: positive)"
    ),
    report: str = typer.Option(None, "--report", help="search with this case's report text"),
    exact: bool = typer.Option(False, "--exact", help="exact cosine over the image matrix, not FAISS"),
    weights: Weights = None,
    runtime: Runtime = "auto",
    as_json: AsJson = False,
) -> None:
    """Films of a dataset nearest to words (the model's text tower against the cached image vectors)."""
    from pedclip.eval.search import query_vector, search_cases
    from pedclip.eval.workspace import Workspace
    from pedclip.store.cases import get_dataset

    store = state(ctx).store(create=False)
    query = _query(store, dataset, text, prompts, cls, report)
    if query.describes is None and query.source == "words":  # words are about the positive class
        names = get_dataset(store, dataset)["class_names"]
        query = replace(query, describes=names[1] if len(names) > 1 else None)
    encoder = load_model(ctx, model, weights=weights, runtime=runtime)
    vec = query_vector(Workspace(store).texts.vectors(encoder, list(query.texts)))
    result = search_cases(store, encoder.fingerprint, dataset, query, vec, k=k, use_index=not exact)
    if as_json:
        emit_json({"model": model, "fingerprint": encoder.fingerprint, **result.as_dict()})
        return
    rows = [
        {
            "rank": h["rank"],
            "case_id": h["case_id"],
            "similarity": round(float(h["similarity"]), 4),
            "class": h["class"],
            "split": h["split"],
            "patient": h["patient_id"],
            "runs": _verdict_cell(h["verdicts"]),
        }
        for h in result.hits.to_dict(orient="records")
    ]
    print_table(
        rows, title=f"{model} on {dataset}: {query.source} ({result.source}, {result.n_searched} films)"
    )
    if result.precision is not None:
        typer.echo(
            f"precision at {len(result.hits)} for {query.describes}: {result.precision:.3f} "
            f"(share of {query.describes} in the dataset: {result.base_rate:.3f})"
        )


def case(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="dataset name"),
    case_id: str = typer.Argument(..., help="case id, as `pedclip search` prints it"),
    k: int = typer.Option(6, "--k", "-k", help="neighbors per model"),
    as_json: AsJson = False,
) -> None:
    """One case: attributes, report, every run's verdict, neighbors under each model, flips between runs."""
    from pedclip.eval.casecard import case_card

    if k < 1:
        raise PedclipError(f"--k must be at least 1; got {k}")
    card = case_card(state(ctx).store(create=False), dataset, case_id, k=k)
    if as_json:
        emit_json(card.as_dict())
        return
    doc = card.as_dict()
    info = doc["case"]
    typer.echo(f"{dataset} / {case_id}: {card.class_name or 'unlabelled'}, split {info.get('split')}, "
               f"patient {info.get('patient_id')}, {info.get('width')}x{info.get('height')} {info.get('mode')}")  # fmt: skip
    typer.echo(f"  file {info.get('path')}" + (f" [{info['member']}]" if info.get("member") else ""))
    for name, value in card.attributes.items():
        typer.echo(f"  {name}: {value}")
    if info.get("report"):
        typer.echo(f"  report: {info['report']}")
    columns = ["run", "model", "protocol", "prompts", "threshold", "score", "predicted", "wrong"]
    print_table(card.verdicts[columns].to_dict(orient="records"), title=f"verdicts ({doc['n_wrong']} wrong)")
    for name, frame in card.neighbors.items():
        print_table(frame.to_dict(orient="records"), title=f"neighbors under {name}")
    if not card.flips.empty:
        print_table(card.flips.to_dict(orient="records"), title="runs between which the prediction flipped")


def export(
    ctx: typer.Context,
    what: str = typer.Argument(..., help="runs | predictions | embeddings"),
    out: str = typer.Option(..., "--out", "-o", help="the Parquet file to write"),
    model: str = typer.Option(None, "--model", "-m", help="only this model spec"),
    dataset: str = typer.Option(None, "--dataset", "-d", help="only this dataset"),
    as_json: AsJson = False,
) -> None:
    """Write runs, per-case predictions or image embeddings (with case ids and labels) to Parquet."""
    from pedclip.store.export import export_parquet

    if not out.endswith(".parquet"):
        raise PedclipError(f"--out {out!r} should name a .parquet file")
    rows = export_parquet(state(ctx).store(create=False), what, out, model=model, dataset=dataset)
    if as_json:
        emit_json({"what": what, "out": out, "rows": rows})
        return
    typer.echo(f"{rows} {what} rows written to {out}")


def register(app: typer.Typer) -> None:
    app.command("search")(search)
    app.command("case")(case)
    app.command("export")(export)
