"""Model versions and lineage: the store folder, binding to a base checkpoint, the served pointer.

Layout beside ``ledger.db``::

    ledger-store/models/<sha256>/      model.safetensors + card.json, one folder per registered version
    ledger-store/certificates/<id>/    certificate.json + certificate.html per served request
    ledger-store/tmp/                  work in progress; never read, cleaned by ``process --resume``

Versions are content-addressed (the folder is named by the weights' sha256) and form one chain: each
child names its parent and the request that produced it. The served-model pointer is a single row, moved
in the same transaction that registers the child (:meth:`Versions.register_child`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from ready2unlearn.artifacts import CARD, WEIGHTS, now_iso, read_card, sha256_file
from ready2unlearn.data.base import Split
from ready2unlearn.ledger.db import Database
from ready2unlearn.ledger.errors import CorruptModel, LedgerError
from ready2unlearn.ledger.records import ModelVersion
from ready2unlearn.recipes.unlearn import load_matching_split
from ready2unlearn.unlearn.sisa_checkpoint import SISA_DIR

_HEX = re.compile(r"[0-9a-f]+")


def default_store(db: Path) -> Path:
    """``ledger.db`` → ``ledger-store`` beside it."""
    return db.parent / f"{db.stem}-store"


class Versions:
    """The registered model versions of one ledger, their files, and the served pointer.

    Args:
        db: The ledger's open database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- binding and the store folder ------------------------------------------------------------------
    @property
    def bound(self) -> bool:
        """Whether a base checkpoint has been registered."""
        return self.db.meta("base_hash") is not None

    @property
    def store(self) -> Path:
        """The folder holding model versions, certificates and work in progress."""
        rel = self.db.meta("store")
        return (self.db.path.parent / rel) if rel else default_store(self.db.path)

    def model_dir(self, version: ModelVersion | str) -> Path:
        """Folder of a registered version."""
        if isinstance(version, str):
            version = self.model(version)
        return self.store / version.path

    def tmp_dir(self, prefix: str) -> Path:
        """A fresh private folder under ``store/tmp`` (same filesystem as ``models/``, so rename is atomic)."""
        root = self.store / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))

    def certificate_dir(self, request_id: int) -> Path:
        """Where the certificate of a request goes."""
        return self.store / "certificates" / f"req-{request_id:05d}"

    def bind(self, checkpoint: str | Path) -> ModelVersion:
        """Registers ``checkpoint`` as the root version and the served model (once per ledger).

        The checkpoint is copied into the store, so the ledger does not depend on the original folder. A
        second call with a checkpoint that is already a registered version is a no-op.

        Raises:
            LedgerError: If the ledger is bound to another model, or the checkpoint is invalid.
        """
        card = read_card(checkpoint)  # checks the weights against the hash in the card
        digest = sha256_file(Path(checkpoint) / WEIGHTS)
        if self.bound:
            if self._row(digest) is None:
                raise LedgerError(f"{self.db.path} is bound to base model {self.db.meta('base_hash', '')[:12]}; "
                                  f"{checkpoint} (sha256 {digest[:12]}) is not one of its versions")  # fmt: skip
            return self.model(digest)
        if "config" not in card or "data" not in card:
            raise LedgerError(f"{checkpoint} was not written by a ready2unlearn recipe (no config/data in its card)")
        final = self.store / "models" / digest
        if not final.is_dir():
            tmp = self.tmp_dir("bind-")
            shutil.copy2(Path(checkpoint) / WEIGHTS, tmp / WEIGHTS)
            shutil.copy2(Path(checkpoint) / CARD, tmp / CARD)
            if (Path(checkpoint) / SISA_DIR).is_dir():  # a SISA model's slice checkpoints: exact unlearning needs them
                shutil.copytree(Path(checkpoint) / SISA_DIR, tmp / SISA_DIR)
            if sha256_file(tmp / WEIGHTS) != digest:
                raise LedgerError(f"{checkpoint} changed while it was being copied into the ledger")
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        with self.db.transaction() as c:
            if self.db.meta("base_hash") is not None:  # another process bound it while we copied
                return self.model(digest)
            c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                ("store", os.path.relpath(self.store, self.db.path.parent)),
                ("base_hash", digest),
                ("base_source", str(Path(checkpoint).resolve())),
                ("created", now_iso()),
            ])  # fmt: skip
            c.execute("INSERT INTO models (hash, parent_hash, created_by, path, config, metrics, created) "
                      "VALUES (?, NULL, NULL, ?, ?, ?, ?)",
                      (digest, f"models/{digest}", json.dumps(card.get("config", {})),
                       json.dumps(card.get("metrics", {})), now_iso()))  # fmt: skip
            c.execute("INSERT INTO served (id, hash, updated) VALUES (1, ?, ?)", (digest, now_iso()))
            self.db.event("bound", None, base=digest, source=str(checkpoint))
        return self.model(digest)

    def base_card(self) -> dict[str, Any]:
        """The card of the root version (data config and fingerprints the ledger validates against).

        Raises:
            LedgerError: If the ledger is not bound yet.
        """
        base = self.db.meta("base_hash")
        if base is None:
            raise LedgerError(f"{self.db.path} is not bound to a model yet: pass --checkpoint DIR (a trained model)")
        return read_card(self.model_dir(base))

    def load_split(self, data_dir: str | None = None) -> tuple[Split, list[int]]:
        """The bound dataset (fingerprint-checked) and the ids the base model had already forgotten."""
        card = self.base_card()
        split, _ = load_matching_split(card, data_dir)
        return split, list((card.get("lineage") or {}).get("forgotten_ids", []))

    # -- versions and lineage ---------------------------------------------------------------------------
    def _row(self, digest: str) -> sqlite3.Row | None:
        return self.db.conn.execute("SELECT * FROM models WHERE hash = ?", (digest,)).fetchone()

    def model(self, digest: str) -> ModelVersion:
        """A registered version by full hash or unique prefix.

        Raises:
            LedgerError: If no (or more than one) version matches.
        """
        prefix = digest.strip().lower()
        if not prefix:
            raise LedgerError("no model hash given")
        if len(prefix) > 64 or not _HEX.fullmatch(prefix):
            raise LedgerError(f"{digest!r} is not a sha256 hash or prefix: use hexadecimal digits (0-9, a-f) only")
        # Compare the prefix literally: with LIKE, '_' and '%' in user input would act as wildcards.
        rows = self.db.conn.execute("SELECT * FROM models WHERE substr(hash, 1, ?) = ? ORDER BY created, rowid",
                                    (len(prefix), prefix)).fetchall()  # fmt: skip
        if len(rows) != 1:
            what = "no model version" if not rows else f"{len(rows)} model versions"
            raise LedgerError(f"{what} in {self.db.path} match hash {digest!r}")
        return ModelVersion.from_sql(rows[0])

    def models(self) -> list[ModelVersion]:
        """Every registered version, oldest first."""
        return [ModelVersion.from_sql(r) for r in self.db.conn.execute("SELECT * FROM models ORDER BY created, rowid")]

    def served_hash(self) -> str | None:
        """The hash of the model currently served (``None`` before binding)."""
        row = self.db.conn.execute("SELECT hash FROM served WHERE id = 1").fetchone()
        return row[0] if row else None

    def lineage(self, digest: str | None = None) -> list[ModelVersion]:
        """The chain of versions from the root to ``digest`` (default: the served model)."""
        if digest is None:
            served = self.served_hash()
            if served is None:
                raise LedgerError(f"{self.db.path} is not bound to a model yet: it has no lineage")
            digest = served
        head = self.model(digest)
        chain = [head]
        while chain[-1].parent_hash is not None:
            chain.append(self.model(chain[-1].parent_hash))
        return chain[::-1]

    def check_model_file(self, version: ModelVersion) -> Path:
        """The version's folder, after checking its weights still hash to the registered value.

        Raises:
            CorruptModel: If the file is missing or its sha256 differs.
        """
        d = self.model_dir(version)
        weights = d / WEIGHTS
        if not weights.is_file():
            raise CorruptModel(f"model version {version.hash[:12]} is missing its weights ({weights})")
        if sha256_file(weights) != version.hash:
            raise CorruptModel(f"model version {version.hash[:12]} is corrupt: {weights} no longer matches its "
                               "registered sha256")  # fmt: skip
        return d

    def register_child(
        self, parent: str, child_hash: str, child_path: str, request_id: int, config: dict[str, Any],
        metrics: dict[str, Any],
    ) -> None:  # fmt: skip
        """Registers a child of the served ``parent`` and moves the served pointer to it.

        Call inside the transaction that marks its requests done, so both happen or neither does.

        Raises:
            LedgerError: If the version is already registered (a version cannot appear twice in the chain).
        """
        if self._row(child_hash) is not None:
            raise LedgerError(f"model {child_hash[:12]} is already registered: a version cannot "
                              "appear twice in the chain")  # fmt: skip
        c = self.db.conn
        c.execute("INSERT INTO models (hash, parent_hash, created_by, path, config, metrics, created) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (child_hash, parent, request_id, child_path, json.dumps(config, default=str),
                   json.dumps(metrics, default=str), now_iso()))  # fmt: skip
        self.db.event("model_registered", request_id, hash=child_hash, parent=parent)
        c.execute("UPDATE served SET hash = ?, updated = ? WHERE id = 1", (child_hash, now_iso()))
        self.db.event("served_moved", request_id, old=parent, new=child_hash)

    def clean_orphans(self) -> list[Path]:
        """Removes work folders and unregistered model folders (left by a worker that died mid-run).

        Only call it while holding a claim: claims serialise, so no other worker is writing files then.
        """
        removed: list[Path] = []
        tmp = self.store / "tmp"
        if tmp.is_dir():
            for p in tmp.iterdir():
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
        models = self.store / "models"
        known = {m.path for m in self.models()}
        if models.is_dir():
            for p in models.iterdir():
                if f"models/{p.name}" not in known:
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
        if removed:
            with self.db.transaction():
                self.db.event("orphans_removed", None, paths=[str(p.relative_to(self.store)) for p in removed])
        return removed
