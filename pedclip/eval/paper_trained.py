"""Tables 3-5 of `pedclip paper`: cells filled from stored fine-tuning, transfer and probe runs.

Each cell's runs are picked by their recorded config (eval/pick.py), never by age; a cell with several
training seeds is summarised over them (eval/seeded.py); Table 5 pairs CLIP and MedCLIP (eval/headtohead.py).
"""

from __future__ import annotations

from pedclip.errors import PedclipError
from pedclip.eval.headtohead import REGIMES, TABLE5_NOTES, Cell, probe_runs, table5_rows
from pedclip.eval.paper import (
    METHODS,
    METRICS,
    SITES,
    PaperConfig,
    ParentLoader,
    Table,
    metric_row,
    missing_row,
    published_row,
    result_row,
    run_zeroshot,
)
from pedclip.eval.pick import RunQuery, candidate_runs, pick_runs, training_config
from pedclip.eval.seeded import seed_columns, seeded_metrics
from pedclip.store import Store
from pedclip.store.runs import get_run

# ---- Tables 3 and 4: from fine-tuning and transfer runs ------------------------------------------------

Picks = dict  # (kind, site, method, protocol) -> Picked


def _query(config: PaperConfig, kind: str, parent, site: str, protocol: str) -> RunQuery:
    train = config.dataset(site) if kind == "finetune" else config.dataset(_other(site))
    return RunQuery(
        kind=kind,
        parent=parent,
        train_dataset=train,
        eval_dataset=None if kind == "finetune" else config.dataset(site),
        protocol=protocol,
        loss=config.loss if protocol == "sound" else None,
        seeds=config.seeds,
        recipe=config.recipe,
    )


def _other(site: str) -> str:
    return "ORI" if site == "UCSD" else "UCSD"


def trained_picks(store: Store, parents: dict, config: PaperConfig) -> Picks:
    """The runs behind every Table 3 and 4 cell, chosen by their recorded config (eval/pick.py)."""
    picks = {}
    for kind in ("finetune", "transfer"):
        candidates = candidate_runs(store, kind, parents.values())
        for site in SITES:
            for method in METHODS:
                for protocol in ("paper", "sound"):
                    query = _query(config, kind, parents.get(method), site, protocol)
                    picks[kind, site, method, protocol] = pick_runs(candidates, query)
    return picks


def trained_row(store: Store, site: str, method: str, protocol: str, picked, note: str, config) -> dict:
    """A Table 3/4 row from the runs of one cell: one run as stored, several seeds averaged (eval/seeded.py)."""
    metrics, auroc = seeded_metrics(store, picked.runs, [k for k, _ in METRICS], config.bootstrap)
    evaluation = picked.runs[0]["config"].get("evaluation") or {}
    n = picked.runs[0]["config"].get("n") or evaluation.get("n", "")
    resampled = picked.runs[0]["config"].get("resampled") or evaluation.get("resampled")
    row = metric_row(
        site,
        method,
        protocol,
        metrics,
        n=n,
        split=picked.runs[0]["split"],
        run_id=", ".join(r["run_id"] for r in picked.runs),
        note="; ".join([note, *picked.notes]),
        resampled=resampled if len(picked.runs) == 1 else None,
    )
    if auroc is not None:
        row["AUC 95% CI"] += " (mean over seeds; patients and seeds resampled)" if row["AUC 95% CI"] else ""
    return {**row, **seed_columns(picked.runs, auroc), **recipe_column(picked.runs[0])}


def recipe_column(run: dict) -> dict:
    """lr and weight decay a cell was trained with, and the tuning grid when they were chosen on validation."""
    trained = training_config(run)
    text = f"lr {trained.get('lr', '')}, wd {trained.get('weight_decay', '')}"
    tune = run["config"].get("tune")
    if tune:
        text += f" (chosen on val AUROC from {len(tune.get('grid', []))} points: {tune_grid_text(tune)})"
    return {"recipe": text}


def tune_grid_text(tune: dict) -> str:
    return ", ".join(f"{p['lr']:g}/{p['weight_decay']:g}" for p in tune.get("grid", []))


def _trained_table(store, picks: Picks, kind: str, config: PaperConfig) -> list[dict]:
    table = "table3" if kind == "finetune" else "table4"
    rows = []
    for site in SITES:
        for method in METHODS:
            rows.append(published_row(table, site, method))
            for protocol in ("paper", "sound"):
                if kind == "transfer" and protocol == "paper" and method == "MedCLIP":
                    row = picks.get(("study-medclip", site))
                    if row is not None:
                        rows.append(row)
                        continue
                picked = picks[kind, site, method, protocol]
                if not picked.runs:
                    rows.append(
                        missing_row(site, method, protocol, _not_run(kind, config, site, method, protocol))
                    )
                    continue
                note = "from the fine-tuning run (test split)" if kind == "finetune" else ""
                note = note or f"fine-tuned on {config.dataset(_other(site))}"
                rows.append(trained_row(store, site, method, protocol, picked, note, config))
    return rows


def _not_run(kind: str, config: PaperConfig, site: str, method: str, protocol: str) -> str:
    if kind == "finetune":
        hint = f"pedclip finetune --model {config.spec(method)} --dataset {config.dataset(site)}"
    else:
        hint = f"pedclip transfer --model {config.spec(method)} --from {config.dataset(_other(site))} --to {config.dataset(site)}"
    return f"not run (`{hint} --protocol {protocol}`)"


def table3_finetuned(store: Store, picks: Picks, config: PaperConfig) -> Table:
    notes = [
        "Fine-tuned on the dataset's train split and evaluated on its test split (study and pedclip alike).",
        "Runs are chosen by their recorded config (model, dataset, protocol, loss, recipe, seed); with several "
        "seeds the metrics are means over seeds and the AUC CI is that of the mean.",
    ]
    return Table("table3", "Table 3: fine-tuned", _trained_table(store, picks, "finetune", config), notes)


def table4_transfer(
    store: Store, parents: dict, picks: Picks, config: PaperConfig, load: ParentLoader, run_ids: list
) -> Table:
    for site in SITES:
        row = _study_medclip_transfer(store, picks, config, site, load, run_ids)
        if row is not None:
            picks["study-medclip", site] = row
    notes = [
        "Each row's model was fine-tuned on the other dataset; paper: all target splits pooled; sound: target test split.",
        "The study's MedCLIP rows both used the UCSD-fine-tuned model (audit section 1); the paper protocol "
        "reproduces that when that model is embedded on the target, so its UCSD row is in-sample, not transfer.",
    ]
    return Table("table4", "Table 4: transfer", _trained_table(store, picks, "transfer", config), notes)


def _study_medclip_transfer(store, picks: Picks, config, site, load, run_ids) -> dict | None:
    """The study's Table 4 MedCLIP cell: the UCSD-fine-tuned (paper) model on `site`, COVID prompts, search."""
    picked = picks["finetune", "UCSD", "MedCLIP", "paper"]
    run = picked.runs[0] if picked.runs else None
    spec = run["config"].get("child_spec") if run else None
    if not spec:
        return None
    try:
        child = load(spec)
        result = run_zeroshot(store, child, config.dataset(site), "medclip-covid", "paper", config, run_ids)
    except PedclipError:
        return None
    note = f"the study's bug reproduced: UCSD-fine-tuned model ({run['run_id']})"
    return result_row(site, "MedCLIP", "paper", result, note)


def head_to_head_cells(
    store: Store, zeroshot_rows: list[dict], parents: dict, picks: Picks, config
) -> list[Cell]:
    """Table 5's inputs per site and regime: sound zero-shot runs of Table 2, each model's linear probe on the
    site, and the runs picked for Tables 3 and 4."""
    zeroshot = {(r["dataset"], r["method"]): r["run_id"] for r in zeroshot_rows if r["source"] == "sound"}
    cells = []
    for site in SITES:
        for regime in REGIMES:
            cell = Cell(site, regime)
            for method in METHODS:
                runs, notes = _regime_runs(store, regime, site, method, zeroshot, parents, picks, config)
                setattr(cell, method.lower(), runs)
                cell.notes += [f"{method}: {n}" for n in notes]
            cells.append(cell)
    return cells


def _regime_runs(
    store, regime, site, method, zeroshot, parents, picks, config
) -> tuple[list[dict], list[str]]:
    if regime == "zero-shot":
        run_id = zeroshot.get((site, method))
        return ([get_run(store, run_id)] if run_id and config.save_runs else []), []
    if regime == "linear probe":
        return probe_runs(store, parents.get(method), config.dataset(site))
    picked = picks["finetune" if regime == "fine-tuned" else "transfer", site, method, "sound"]
    return picked.runs, picked.notes


def table5_head_to_head(
    store: Store, zeroshot_rows: list[dict], parents: dict, picks: Picks, config
) -> Table:
    cells = head_to_head_cells(store, zeroshot_rows, parents, picks, config)
    rows = table5_rows(store, cells, config.bootstrap)
    return Table("table5", "Table 5: CLIP vs MedCLIP head to head (sound protocol)", rows, list(TABLE5_NOTES))
