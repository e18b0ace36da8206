"""The store's tables and forward migrations. Later issues add migrations; none rewrites an old one."""

from __future__ import annotations

# Each migration is a list of statements; migration i brings the schema from version i to i+1.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS datasets (
            name VARCHAR PRIMARY KEY,
            source_kind VARCHAR NOT NULL,      -- kermany | study | folders | csv | npz | dicom | synth
            root VARCHAR NOT NULL,             -- the ingested source, absolute
            class_names VARCHAR NOT NULL,      -- JSON list, index = label (0 normal, 1 pneumonia)
            attributes VARCHAR NOT NULL DEFAULT '{}',  -- JSON: site, split origin, seed ...
            created TIMESTAMP NOT NULL DEFAULT current_timestamp,
            updated TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE IF NOT EXISTS cases (
            dataset VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,          -- stable within the dataset: relative path, or file#member
            uid BIGINT NOT NULL,               -- stable 63-bit id (hash of dataset, case_id) used by FAISS
            path VARCHAR NOT NULL,             -- absolute source file
            member VARCHAR,                    -- address inside the file (npz: 'train:12'), else NULL
            image_sha256 VARCHAR NOT NULL,     -- of the file bytes, or of the array for npz members
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            mode VARCHAR NOT NULL,             -- PIL mode as decoded (L, RGB, I;16 ...)
            label INTEGER,                     -- 0 normal, 1 pneumonia; NULL when unknown
            patient_id VARCHAR,
            split VARCHAR,                     -- train | val | test
            source_split VARCHAR,              -- the split the source itself gave, kept when re-split
            report VARCHAR,                    -- free-text report when the source has one
            attributes VARCHAR NOT NULL DEFAULT '{}',  -- JSON: pathogen, site, age, sex, view ...
            PRIMARY KEY (dataset, case_id)
        )""",
        """CREATE TABLE IF NOT EXISTS ingest_errors (
            dataset VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            member VARCHAR,
            reason VARCHAR NOT NULL,
            created TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE IF NOT EXISTS models (
            fingerprint VARCHAR PRIMARY KEY,
            spec VARCHAR NOT NULL,
            family VARCHAR NOT NULL,           -- openclip | medclip | local | demo
            dim INTEGER NOT NULL,
            preprocess VARCHAR NOT NULL,       -- JSON preprocess config
            dtype VARCHAR NOT NULL,
            weights VARCHAR,                   -- what identified the weights: file sha256, tag, or untrained seed
            untrained BOOLEAN NOT NULL DEFAULT false,
            parent_fingerprint VARCHAR,
            config VARCHAR NOT NULL DEFAULT '{}',
            created TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE IF NOT EXISTS image_embeddings (
            fingerprint VARCHAR NOT NULL,
            image_sha256 VARCHAR NOT NULL,
            vector FLOAT[] NOT NULL,
            PRIMARY KEY (fingerprint, image_sha256)
        )""",
        """CREATE TABLE IF NOT EXISTS text_embeddings (
            fingerprint VARCHAR NOT NULL,
            text VARCHAR NOT NULL,
            vector FLOAT[] NOT NULL,
            PRIMARY KEY (fingerprint, text)
        )""",
        """CREATE TABLE IF NOT EXISTS runs (
            run_id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,             -- zeroshot | rescore | probe | fewshot | knn | finetune | transfer
            protocol VARCHAR NOT NULL,         -- sound | paper
            model VARCHAR NOT NULL,            -- spec as given
            fingerprint VARCHAR,
            train_dataset VARCHAR,
            eval_dataset VARCHAR,
            split VARCHAR,                     -- evaluated split(s), e.g. test or train+val+test
            config VARCHAR NOT NULL DEFAULT '{}',
            metrics VARCHAR NOT NULL DEFAULT '{}',
            status VARCHAR NOT NULL DEFAULT 'done',
            created TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE IF NOT EXISTS predictions (
            run_id VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL,             -- P(pneumonia) (before migration 2: the protocol's AUC score)
            predicted INTEGER NOT NULL,
            label INTEGER,
            PRIMARY KEY (run_id, dataset, case_id)
        )""",
        """CREATE TABLE IF NOT EXISTS epochs (
            run_id VARCHAR NOT NULL,
            epoch INTEGER NOT NULL,
            metrics VARCHAR NOT NULL,          -- JSON: train_loss, val_loss, val_auroc ...
            PRIMARY KEY (run_id, epoch)
        )""",
    ],
    # 2: `score` is P(positive) for every run; `auc_score` holds the protocol's AUC score where it differs
    # (the study's top-1 probability for `paper` CLIP runs), NULL where it is `score` itself. Old top-1 rows
    # get P(positive) back from the prediction: exact at the paper protocol's fixed 0.5 threshold.
    [
        "ALTER TABLE predictions ADD COLUMN auc_score DOUBLE",
        """UPDATE predictions SET auc_score = score,
               score = CASE WHEN predicted = 1 THEN score ELSE 1 - score END
           WHERE run_id IN (
               SELECT run_id FROM runs WHERE json_extract_string(config, '$.score') = 'top1_probability'
           )""",
    ],
    # 2 -> 3: the row of each image vector in the per-model scanning matrix (store/matrix.py), assigned in
    # the transaction that commits the vector, so DuckDB says which file row holds which image.
    [
        """CREATE TABLE IF NOT EXISTS vector_rows (
            fingerprint VARCHAR NOT NULL,
            image_sha256 VARCHAR NOT NULL,
            row_index BIGINT NOT NULL,         -- dense from 0 per fingerprint, in commit order
            PRIMARY KEY (fingerprint, image_sha256)
        )""",
        """INSERT INTO vector_rows
           SELECT fingerprint, image_sha256,
                  row_number() OVER (PARTITION BY fingerprint ORDER BY image_sha256) - 1
           FROM image_embeddings e
           WHERE NOT EXISTS (SELECT 1 FROM vector_rows r WHERE r.fingerprint = e.fingerprint)""",
    ],
    # 3 -> 4: what the dashboard's explorers keep: 2-D maps computed once per (model, datasets, embedded
    # state, method), and every prompt set tried in the prompt lab with its AUROC.
    [
        """CREATE TABLE IF NOT EXISTS projections (
            fingerprint VARCHAR NOT NULL,
            datasets VARCHAR NOT NULL,         -- the projected datasets, sorted, comma-joined
            method VARCHAR NOT NULL,           -- pca | umap
            selection VARCHAR NOT NULL,        -- sha256 of the datasets' embedded state and the parameters
            params JSON NOT NULL,
            dataset VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,
            x DOUBLE NOT NULL,
            y DOUBLE NOT NULL,
            computed_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (fingerprint, datasets, method, dataset, case_id)
        )""",
        """CREATE TABLE IF NOT EXISTS prompt_trials (
            fingerprint VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            prompts_key VARCHAR NOT NULL,      -- sha256 of the prompts document
            prompts JSON NOT NULL,             -- {"positive": .., "classes": {name: [texts]}}
            auroc DOUBLE,
            auroc_lo DOUBLE,
            auroc_hi DOUBLE,
            n_cases INTEGER NOT NULL,
            tries INTEGER NOT NULL DEFAULT 1,
            first_tried TIMESTAMP NOT NULL DEFAULT current_timestamp,
            last_tried TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (fingerprint, dataset, split, prompts_key)
        )""",
    ],
    # 4 -> 5: a 128-bit integer key per image beside its sha256 hex string (md5_number of that string, so any
    # image id works, and computed by DuckDB in the statement that writes the row): scoring joins a dataset's
    # cases to a model's matrix rows on it, not on 64-character strings (1M cases: ~145 -> ~98 ms).
    [
        "ALTER TABLE cases ADD COLUMN image_key UHUGEINT",
        "UPDATE cases SET image_key = md5_number(image_sha256)",
        "ALTER TABLE vector_rows ADD COLUMN image_key UHUGEINT",
        "UPDATE vector_rows SET image_key = md5_number(image_sha256)",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
