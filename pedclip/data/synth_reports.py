"""One- or two-sentence radiology reports that name exactly what was drawn (finding, lobe, side)."""

from __future__ import annotations

import numpy as np

from pedclip.data.synth_findings import Finding


def lobe_name(side: str, lobe: str) -> str:
    """'right lower lobe', 'left upper lobe', 'lingula'."""
    return "lingula" if lobe == "lingula" else f"{side} {lobe} lobe"


CONSOLIDATION = {
    "lobar": (
        "Lobar consolidation of the {where}.",
        "Dense consolidation of the {where}, consistent with lobar pneumonia.",
    ),
    "patchy": (
        "Patchy consolidation in the {where}.",
        "Patchy airspace opacity in the {where}, consistent with pneumonia.",
    ),
    "round": ("Round opacity in the {where}, consistent with round pneumonia.",),
}
INTERSTITIAL = {
    "perihilar": (
        "Diffuse bilateral perihilar interstitial opacities{worse}.",
        "Bilateral perihilar peribronchial thickening and interstitial opacities{worse}, suggesting viral "
        "pneumonia.",
    ),
    "diffuse": (
        "Diffuse bilateral interstitial opacities{worse}, consistent with atypical pneumonia.",
        "Bilateral reticular interstitial opacities throughout the lungs{worse}.",
    ),
}
NORMAL = (
    "No focal consolidation. Heart size normal.",
    "Clear lungs without focal consolidation.",
    "No focal consolidation or pleural effusion.",
    "Lungs are clear. Normal cardiothymic silhouette.",
)
ADDENDA = ("Heart size normal.", "No pleural effusion.", "")


def write_report(finding: Finding, pediatric: bool, rng: np.random.Generator) -> str:
    """The report for one film; wording varies, the named finding, lobe and side never do."""
    if finding.kind == "consolidation":
        where = lobe_name(finding.side, finding.lobe)
        first = str(rng.choice(CONSOLIDATION[finding.pattern])).format(where=where)
        return join(first, str(rng.choice(ADDENDA)))
    if finding.kind == "interstitial":
        # one-sided interstitial findings are drawn in both lungs, heavier on the named side
        worse = "" if finding.side == "bilateral" else f", worse on the {finding.side}"
        return str(rng.choice(INTERSTITIAL[finding.pattern])).format(worse=worse)
    if finding.kind == "cardiomegaly":
        return "Cardiomegaly. No focal consolidation."
    if finding.kind == "effusion":
        size = "Small" if finding.severity < 0.6 else "Moderate"
        where = (
            "bilateral pleural effusions"
            if finding.side == "bilateral"
            else f"{finding.side} pleural effusion"
        )
        return f"{size} {where}. No focal consolidation."
    normal = NORMAL if pediatric else NORMAL[:3]  # "cardiothymic" is a pediatric word
    return str(rng.choice(normal))


def join(*sentences: str) -> str:
    return " ".join(s for s in sentences if s)
