"""Evaluation from the embedding cache; no module here decodes an image.

metrics (pure functions of arrays) · bootstrap (vectorised CIs) · slices (metrics by attribute) ·
prompts (+ prompts/*.toml) · zeroshot · rescore (the prompt lab's function) · probe · knn ·
protocols (`paper` vs `sound`) · paper (Tables 1-4) · report (HTML) · compare / runs (run deltas).
"""
