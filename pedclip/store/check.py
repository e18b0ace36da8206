"""`pedclip store check`: the store's invariants, what breaks them, and the command that repairs each.

A finding is a `problem` (the store breaks an invariant: `store check` exits 1) or a `note` (a normal
state worth knowing, such as a FAISS index that will be rebuilt on its next use). A problem is `safe` to
repair when the repair only drops what pedclip can rebuild or never reads: cached vectors and pixels,
index files, temporary files, rows that belong to nothing. Rows that record a result (runs, predictions,
cases) are never deleted by `--repair`; their finding names the command that settles them.

The database invariants are here; those of the files beside it (FAISS, pixel cache, temporary files)
are in `store/check_files.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from pedclip.store.db import Store

REPAIR = "pedclip store check --repair"
UNIT_NORM_TOLERANCE = 1e-3  # a stored vector further than this from unit length was cut short or corrupted


@dataclass(frozen=True)
class Finding:
    """One broken invariant (or note): what, how many, an example, and how to repair it."""

    check: str  # a stable name, e.g. "embeddings-without-model"
    message: str  # one line: what is wrong
    count: int
    fix: str  # the command (or action) that repairs it
    safe: bool  # `--repair` does it
    severity: str = "problem"  # problem | note
    examples: tuple[str, ...] = ()

    def line(self) -> str:
        example = f" (e.g. {self.examples[0]})" if self.examples else ""
        return f"{self.severity}: {self.message}{example}; fix: {self.fix}"


@dataclass
class CheckReport:
    """Every finding, and what `--repair` did."""

    findings: list[Finding] = field(default_factory=list)
    repaired: list[dict] = field(default_factory=list)  # {"check", "removed"} per repair done

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "problem"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "problems": [asdict(f) for f in self.problems],
            "notes": [asdict(f) for f in self.findings if f.severity == "note"],
            "repaired": self.repaired,
        }


@dataclass(frozen=True)
class RowCheck:
    """A database invariant: a query that counts and names the rows breaking it, and the safe repair."""

    check: str
    message: str  # with {n}
    select: str  # SELECT <example text> ... : one row per offending row
    fix: str
    # The statement that repairs exactly those rows, when that repair is safe: a DELETE, or an UPDATE that
    # recomputes a derived column (then `repaired_as` is "recomputed").
    delete: str | None = None
    repaired_as: str = "removed"


_EMBEDDED_MODEL = "SELECT 1 FROM models m WHERE m.fingerprint = e.fingerprint"

_KEY_DIFFERS = "image_key IS DISTINCT FROM md5_number(image_sha256)"

ROW_CHECKS: tuple[RowCheck, ...] = (
    RowCheck(
        "cases-image-key",
        "{n} cases lack the integer key of their image (written by something other than pedclip's ingest): "
        "scoring would leave them out",
        f"SELECT c.dataset || '/' || c.case_id FROM cases c WHERE {_KEY_DIFFERS}",
        REPAIR + " (recomputes the key from the sha256)",
        f"UPDATE cases SET image_key = md5_number(image_sha256) WHERE {_KEY_DIFFERS}",
        "recomputed",
    ),
    RowCheck(
        "vector-rows-image-key",
        "{n} matrix rows lack the integer key of their image: scoring would leave their cases out",
        f"SELECT r.fingerprint || '/' || r.image_sha256 FROM vector_rows r WHERE {_KEY_DIFFERS}",
        REPAIR + " (recomputes the key from the sha256)",
        f"UPDATE vector_rows SET image_key = md5_number(image_sha256) WHERE {_KEY_DIFFERS}",
        "recomputed",
    ),
    RowCheck(
        "image-embeddings-without-model",
        "{n} image vectors belong to no registered model (cached vectors nothing can use)",
        f"SELECT e.fingerprint || '/' || e.image_sha256 FROM image_embeddings e WHERE NOT EXISTS ({_EMBEDDED_MODEL})",
        REPAIR + " (drops them; `pedclip embed` recomputes what a model needs)",
        f"DELETE FROM image_embeddings e WHERE NOT EXISTS ({_EMBEDDED_MODEL})",
    ),
    RowCheck(
        "text-embeddings-without-model",
        "{n} text vectors belong to no registered model",
        f"SELECT e.fingerprint || '/' || e.text FROM text_embeddings e WHERE NOT EXISTS ({_EMBEDDED_MODEL})",
        REPAIR + " (drops them; prompts are encoded again when used)",
        f"DELETE FROM text_embeddings e WHERE NOT EXISTS ({_EMBEDDED_MODEL})",
    ),
    RowCheck(
        "image-embeddings-wrong-dimension",
        "{n} image vectors have a length other than their model's dimension",
        "SELECT e.fingerprint || '/' || e.image_sha256 FROM image_embeddings e JOIN models m "
        "ON m.fingerprint = e.fingerprint WHERE len(e.vector) <> m.dim",
        REPAIR + " (drops them), then `pedclip embed` again",
        "DELETE FROM image_embeddings e WHERE len(e.vector) <> "
        "(SELECT m.dim FROM models m WHERE m.fingerprint = e.fingerprint)",
    ),
    RowCheck(
        "image-embeddings-not-unit",
        "{n} image vectors are not unit length (cut short or corrupted)",
        "SELECT e.fingerprint || '/' || e.image_sha256 FROM image_embeddings e "
        f"WHERE NOT abs(sqrt(list_dot_product(e.vector, e.vector)) - 1) <= {UNIT_NORM_TOLERANCE}",
        REPAIR + " (drops them), then `pedclip embed` again",
        "DELETE FROM image_embeddings e "
        f"WHERE NOT abs(sqrt(list_dot_product(e.vector, e.vector)) - 1) <= {UNIT_NORM_TOLERANCE}",
    ),
    RowCheck(
        "predictions-without-run",
        "{n} predictions belong to no run",
        "SELECT p.run_id || ' ' || p.dataset || '/' || p.case_id FROM predictions p "
        "WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = p.run_id)",
        REPAIR + " (drops them: no page or command can reach them)",
        "DELETE FROM predictions p WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = p.run_id)",
    ),
    RowCheck(
        "epochs-without-run",
        "{n} epoch rows belong to no run",
        "SELECT e.run_id || ' epoch ' || e.epoch FROM epochs e "
        "WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = e.run_id)",
        REPAIR + " (drops them)",
        "DELETE FROM epochs e WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = e.run_id)",
    ),
    RowCheck(
        "predictions-without-case",
        "{n} predictions name a case the store no longer has (the dataset was re-ingested without it)",
        "SELECT p.run_id || ' ' || p.dataset || '/' || p.case_id FROM predictions p WHERE NOT EXISTS "
        "(SELECT 1 FROM cases c WHERE c.dataset = p.dataset AND c.case_id = p.case_id)",
        "ingest the source that has those cases again (`pedclip data ingest SOURCE --name DATASET`), "
        "or rerun the run on today's cases",
    ),
    RowCheck(
        "cases-without-dataset",
        "{n} cases belong to no dataset",
        "SELECT c.dataset || '/' || c.case_id FROM cases c "
        "WHERE NOT EXISTS (SELECT 1 FROM datasets d WHERE d.name = c.dataset)",
        "ingest the dataset again (`pedclip data ingest SOURCE --name DATASET`)",
    ),
)

MAX_EXAMPLES = 3


def row_findings(store: Store) -> list[Finding]:
    """The database invariants that do not hold, one finding per broken invariant."""
    findings = []
    with store.read() as con:
        for rule in ROW_CHECKS:
            count = con.execute(f"SELECT count(*) FROM ({rule.select})").fetchone()[0]
            if count:
                rows = con.execute(f"{rule.select} LIMIT {MAX_EXAMPLES}").fetchall()
                findings.append(_finding(rule, count, tuple(str(r[0]) for r in rows)))
    return findings


def _finding(rule: RowCheck, count: int, examples: tuple[str, ...]) -> Finding:
    return Finding(
        check=rule.check,
        message=rule.message.format(n=count),
        count=count,
        fix=rule.fix,
        safe=rule.delete is not None,
        examples=examples,
    )


def repair_rows(store: Store, findings: list[Finding]) -> list[dict]:
    """Run the safe DELETE of each broken row invariant, in one transaction; what was removed."""
    rules = {rule.check: rule for rule in ROW_CHECKS}
    done = []
    with store.write() as con:
        for finding in findings:
            rule = rules.get(finding.check)
            if rule is not None and rule.delete is not None:
                removed = con.execute(f"SELECT count(*) FROM ({rule.select})").fetchone()[0]
                con.execute(rule.delete)
                done.append({"check": rule.check, rule.repaired_as: int(removed)})
    return done


def check_store(store: Store, repair: bool = False) -> CheckReport:
    """Every invariant of the store and its files; with `repair`, do the safe repairs and check again."""
    from pedclip.store import check_files

    checks: list[Callable[[Store], list[Finding]]] = [row_findings, *check_files.FILE_CHECKS]
    findings = [f for check in checks for f in check(store)]
    if not repair or not any(f.safe for f in findings):
        return CheckReport(findings)
    repaired = repair_rows(store, findings) + check_files.repair_files(store, findings)
    after = [f for check in checks for f in check(store)]
    return CheckReport(after, repaired)
