"""Certificates: what was asked, which model served it, how, and the evidence that it worked.

``certificate.json`` holds the request, the parent and child model hashes (with paths to their
safetensors files, relative to the certificate), the method and its resolved config, how the run ended,
the verification results (UA/RA/TA, membership inference, relearning attack, the gap to a retrained model
when one was given) and the ``outcome``. A certificate is only issued for a deletion that happened: either
the run met its stop rule and changed the model (``"outcome": "forgotten"``, ``unlearning.reached`` true),
or the stop target already held before any step, so the model is unchanged and the certificate says so
(``"outcome": "target already met before unlearning; model unchanged"``). A run that missed its target or
diverged leaves its request ``failed`` and no certificate.

What each check protects against, from weakest to strongest:

- ``certificate_sha256``, the sha256 of the canonical JSON of everything else (sorted keys, no
  whitespace, non-finite numbers as ``null``; the seals themselves excluded), catches accidental or naive
  edits: a field changed without recomputing the hash. It is *not* a signature: anyone who edits the file
  can recompute it (and delete the HTML copy that carries it).
- ``hmac_sha256``, present when ``R2U_CERT_KEY`` was set when the certificate was issued, is HMAC-SHA256 of
  the same canonical bytes under that key. With the key set at verify time, a certificate re-sealed by
  someone without the key fails, and so does one whose signature was removed. Without the key at verify
  time the signature is reported as not checked (it cannot be, and does not fail).
- ``verify --ledger DB`` cross-checks the certificate against the ledger that issued it: the request row
  (id, kind, target, spec, submitter, reason, status done, parent and child hashes), the append-only event
  log (one completion event naming the same child), and the lineage (the child is registered with the
  parent as its parent, or equals it for the already-met case). Rewriting a certificate then also means
  rewriting the database, whose write access is the thing to guard.

Re-hashing the two model files proves the files on disk are the ones the certificate names, and the outcome
check fails any certificate whose run did not reach its target, diverged, or left the model unchanged
without saying why (defence in depth: the ledger does not issue those).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ready2unlearn.artifacts import atomic_write, sha256_file, write_json
from ready2unlearn.errors import R2UError
from ready2unlearn.ledger.store import Ledger, LedgerError

CERT_JSON = "certificate.json"
CERT_HTML = "certificate.html"
HASH_FIELD = "certificate_sha256"
HMAC_FIELD = "hmac_sha256"
KEY_ENV = "R2U_CERT_KEY"
SCHEMA = 2
OUTCOME_FORGOTTEN = "forgotten"
OUTCOME_ALREADY_MET = "target already met before unlearning; model unchanged"
#: A SISA model: the shards that held the rows were retrained without them (exact by construction).
OUTCOME_EXACT = "forgotten exactly (SISA: affected shards retrained without the rows)"
_SEALS = (HASH_FIELD, HMAC_FIELD)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _finite(obj: Any) -> Any:
    """Replaces NaN/inf with ``None`` (strict JSON has no such numbers) and tuples with lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _dict(v: Any) -> dict[str, Any]:
    """``v`` if it is a mapping, else an empty one (a hand-edited certificate may hold anything anywhere)."""
    return v if isinstance(v, dict) else {}


def _is_sha256(v: Any) -> bool:
    return isinstance(v, str) and _SHA256.fullmatch(v) is not None


def canonical_bytes(cert: dict[str, Any]) -> bytes:
    """The bytes the self-hash and the HMAC are computed over: canonical JSON of ``cert`` without its seals."""
    body = {k: v for k, v in cert.items() if k not in _SEALS}
    return json.dumps(_finite(body), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()  # fmt: skip


def cert_key() -> bytes | None:
    """The HMAC key from ``$R2U_CERT_KEY`` (``None`` when unset or empty)."""
    key = os.environ.get(KEY_ENV, "")
    return key.encode() if key else None


def _hmac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def seal(cert: dict[str, Any], key: bytes | None = None) -> dict[str, Any]:
    """Returns ``cert`` (made strict-JSON) with its ``certificate_sha256``, and ``hmac_sha256`` under ``key``."""
    body = _finite({k: v for k, v in cert.items() if k not in _SEALS})
    data = canonical_bytes(body)
    sealed = dict(body)
    if key:
        sealed[HMAC_FIELD] = _hmac(key, data)
    sealed[HASH_FIELD] = hashlib.sha256(data).hexdigest()
    return sealed


def write_certificate(out_dir: str | Path, cert: dict[str, Any], *, key: bytes | None = None) -> Path:
    """Seals ``cert`` and writes ``certificate.json`` and ``certificate.html`` atomically into ``out_dir``.

    Args:
        out_dir: The certificate's folder.
        cert: The content (see :mod:`ready2unlearn.ledger.process`).
        key: HMAC key; default ``$R2U_CERT_KEY`` (no signature when that is unset).

    Returns:
        The path of ``certificate.json``.
    """
    out = Path(out_dir)
    sealed = seal(cert, key if key is not None else cert_key())
    html_text = render_html(sealed)
    atomic_write(out / CERT_HTML, lambda p: p.write_text(html_text, encoding="utf-8"))
    return write_json(out / CERT_JSON, sealed)


@dataclass
class Check:
    """One verification check."""

    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    """The outcome of :func:`verify_certificate`."""

    path: Path
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return bool(self.checks) and all(c.ok for c in self.checks)


def load_certificate(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """Reads a certificate (``certificate.json``, its folder, or the ``certificate.html`` beside it).

    Raises:
        R2UError: If the file is missing or not JSON.
    """
    p = Path(path)
    if p.is_dir():
        p = p / CERT_JSON
    elif p.suffix == ".html":
        p = p.with_name(CERT_JSON)
    if not p.is_file():
        raise R2UError(f"{p} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise R2UError(f"{p} is not a certificate: not valid JSON ({e})") from None
    except OSError as e:
        raise R2UError(f"cannot read {p} ({e.strerror or e})") from None
    if not isinstance(data, dict) or data.get("kind") != "ready2unlearn.certificate":
        raise R2UError(f"{p} is not a ready2unlearn certificate")
    return p, data


def verify_certificate(path: str | Path, ledger: str | Path | None = None, *, key: bytes | None = None) -> Verification:
    """Re-checks a certificate: its seals, the model files it names, its outcome, and optionally the ledger.

    Args:
        path: ``certificate.json`` (or its folder, or ``certificate.html``).
        ledger: The ledger database that issued it: cross-check the request row, the event log and the
            lineage (read-only).
        key: HMAC key; default ``$R2U_CERT_KEY``. When set, a missing or wrong ``hmac_sha256`` fails.

    Returns:
        A :class:`Verification`; ``ok`` is true only when every check passed. A certificate whose structure
        was edited (a field of the wrong type, a section missing) gives failed checks, never an exception.

    Raises:
        R2UError: If the file cannot be read as a certificate at all, or ``ledger`` is not a ledger.
    """
    p, cert = load_certificate(path)
    if ledger is not None:
        # Open the ledger first, so a wrong --ledger is a one-line error before any output.
        with Ledger(ledger, readonly=True) as led:
            result = _verify(p, cert, key if key is not None else cert_key())
            result.checks += _ledger_checks(cert, led)
        return result
    return _verify(p, cert, key if key is not None else cert_key())


def _verify(p: Path, cert: dict[str, Any], key: bytes | None) -> Verification:
    result = Verification(p)
    recorded = cert.get(HASH_FIELD)
    data: bytes | None
    try:
        data = canonical_bytes(cert)
        actual = hashlib.sha256(data).hexdigest()
    except (ValueError, TypeError) as e:  # a non-finite number was written into the file by hand
        data, actual = None, f"unhashable ({e})"
    same = isinstance(recorded, str) and hmac.compare_digest(recorded, actual)
    result.checks.append(Check("certificate sha256", same, f"recorded {str(recorded)[:16]}…, computed {actual[:16]}…"))
    result.checks.append(_hmac_check(cert.get(HMAC_FIELD), data, key))
    html_path = p.with_name(CERT_HTML)
    if html_path.is_file():
        try:
            found = isinstance(recorded, str) and bool(recorded) and recorded in html_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            found = False
        result.checks.append(Check("certificate.html names the same hash", found, html_path.name))
    else:
        # Not a failure: the JSON is the certificate, the page is a copy for people. (Its absence proves nothing
        # either way, since whoever re-seals a certificate can just as well rewrite the page.)
        result.checks.append(Check("certificate.html names the same hash", True, "no certificate.html: not checked"))
    result.checks.append(_structure_check(cert))
    models = _dict(cert.get("models"))
    for role in ("parent", "child"):
        result.checks.append(_model_check(p, role, _dict(models.get(role))))
    result.checks.append(_outcome_check(cert))
    return result


def _structure_check(cert: dict[str, Any]) -> Check:
    """The sections and fields a certificate needs, with the right types (a re-sealed edit can break them)."""
    problems: list[str] = []

    def need(where: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is int)
        if not ok:
            problems.append(f"{where} is {type(value).__name__}, not {what}")

    req, models, method, ver = cert.get("request"), cert.get("models"), cert.get("method"), cert.get("verification")
    need("created", cert.get("created"), str, "a time")
    if cert.get("schema") != 1:
        need("outcome", cert.get("outcome"), str, "a text")
    need("request", req, dict, "an object")
    if isinstance(req, dict):
        need("request.id", req.get("id"), int, "an integer")
        for k in ("kind", "target", "submitter", "reason", "created"):
            need(f"request.{k}", req.get(k), str, "a text")
        need("request.spec", req.get("spec"), dict, "an object")
        need("request.batch", req.get("batch", []), list, "a list")
        if isinstance(req.get("batch"), list) and not all(type(i) is int for i in req["batch"]):
            problems.append("request.batch holds something other than request ids")
    need("models", models, dict, "an object")
    if isinstance(models, dict):
        for role in ("parent", "child"):
            need(f"models.{role}", models.get(role), dict, "an object")
    need("method", method, dict, "an object")
    if isinstance(method, dict):
        need("method.name", method.get("name"), str, "a text")
        need("method.config", method.get("config"), dict, "an object")
    need("unlearning", cert.get("unlearning"), dict, "an object")
    need("verification", ver, dict, "an object")
    if isinstance(ver, dict):
        need("verification.metrics", ver.get("metrics", {}), dict, "an object")
        for k in ("relearn", "per_request"):
            v = ver.get(k, {})
            need(f"verification.{k}", v, dict, "an object")
            if isinstance(v, dict) and not all(isinstance(x, dict) for x in v.values()):
                problems.append(f"verification.{k} holds something other than objects")
    if problems:
        return Check("certificate structure", False, "; ".join(problems))
    return Check("certificate structure", True, "every section present, with the expected types")


def _hmac_check(recorded: Any, data: bytes | None, key: bytes | None) -> Check:
    name = "certificate HMAC (R2U_CERT_KEY)"
    if recorded is not None and not _is_sha256(recorded):
        return Check(name, False, f"{HMAC_FIELD} is not a hex HMAC-SHA256 (malformed certificate)")
    if key is None:
        what = "signed" if recorded is not None else "unsigned"
        return Check(name, True, f"not checked: {KEY_ENV} not set ({what} certificate)")
    if recorded is None:
        return Check(name, False, f"{KEY_ENV} is set but the certificate carries no {HMAC_FIELD}: it was issued "
                     "without the key, or the signature was removed")  # fmt: skip
    if data is None:
        return Check(name, False, f"{HMAC_FIELD} cannot be checked (the content cannot be hashed)")
    ok = hmac.compare_digest(recorded, _hmac(key, data))
    return Check(name, ok, "matches the key" if ok else "does not match: edited or re-sealed without the key")


def _model_check(p: Path, role: str, model: dict[str, Any]) -> Check:
    expected, rel = model.get("sha256"), model.get("file")
    if not _is_sha256(expected) or not isinstance(rel, str) or not rel:
        return Check(f"{role} model", False, "the certificate names no valid sha256 and file for it")
    try:
        f = (p.parent / rel).resolve()
        if not f.is_file():
            return Check(f"{role} model sha256", False, f"{f} is missing")
        got = sha256_file(f)
    except (OSError, ValueError) as e:
        return Check(f"{role} model sha256", False, f"cannot read {rel!r} ({e})")
    detail = f"{expected[:16]}… matches" if got == expected else f"expected {expected[:16]}…, file has {got[:16]}…"
    return Check(f"{role} model sha256", got == expected, detail)


def _outcome_check(cert: dict[str, Any]) -> Check:
    """Fails a certificate that does not prove a deletion: target missed, diverged, or nothing changed silently."""
    un = _dict(cert.get("unlearning"))
    models = _dict(cert.get("models"))
    parent, child = _dict(models.get("parent")).get("sha256"), _dict(models.get("child")).get("sha256")
    outcome, reason = cert.get("outcome"), un.get("stop_reason")
    problems = []
    if un.get("reached") is not True:
        problems.append(f"unlearning.reached is {un.get('reached')!r}, not true: the stop rule was not met")
    if not isinstance(reason, str):
        problems.append("no stop reason recorded")
    elif reason.startswith("diverged"):
        problems.append(f"the run {reason}")
    if not _is_sha256(parent) or not _is_sha256(child):
        problems.append("no valid parent and child hashes")
    elif child == parent:
        if outcome != OUTCOME_ALREADY_MET:
            problems.append(f"the child model is the parent (nothing changed) but the outcome is {outcome!r}, not "
                            f"{OUTCOME_ALREADY_MET!r}")  # fmt: skip
        elif un.get("steps") != 0:
            problems.append(f"outcome says the target already held, but {un.get('steps')!r} steps were taken")
    elif outcome is None and cert.get("schema") == 1:
        pass  # schema-1 certificates predate the field; reached and a changed model are what it would say
    elif outcome == OUTCOME_EXACT:
        if not (isinstance(un.get("exact"), str) and un["exact"].startswith("exact: retrained shard")):
            problems.append("the outcome says exact, but no retrained shard is recorded (unlearning.exact)")
    elif outcome != OUTCOME_FORGOTTEN:
        problems.append(f"the model changed but the outcome is {outcome!r}, not {OUTCOME_FORGOTTEN!r}")
    if problems:
        return Check("unlearning outcome", False, "; ".join(problems))
    said = outcome if isinstance(outcome, str) else OUTCOME_FORGOTTEN
    return Check("unlearning outcome", True, f"{said} ({reason}, {un.get('steps')} step(s))")


def _ledger_checks(cert: dict[str, Any], led: Ledger) -> list[Check]:
    """The request row, the event log and the lineage of the issuing ledger, one check each."""
    req = _dict(cert.get("request"))
    models = _dict(cert.get("models"))
    parent, child = _dict(models.get("parent")).get("sha256"), _dict(models.get("child")).get("sha256")
    rid = req.get("id")
    names = ("ledger: request row", "ledger: event log")
    lineage = _lineage_check("ledger: lineage", led, parent, child, cert.get("outcome"))
    if not isinstance(rid, int) or isinstance(rid, bool):
        return [*(Check(n, False, "the certificate names no request id") for n in names), lineage]
    try:
        row = led.request(rid)
    except LedgerError:
        return [*(Check(n, False, f"no request #{rid} in {led.path}") for n in names), lineage]
    checks = []

    differ = [f for f in ("kind", "target", "spec", "submitter", "reason", "created") if req.get(f) != getattr(row, f)]
    problems = [f"{f} differs (certificate {_short(req.get(f))}, ledger {_short(getattr(row, f))})" for f in differ]
    if row.status != "done":
        problems.append(f"the request is {row.status}, not done")
    if row.parent_hash != parent or row.child_hash != child:
        problems.append(f"the ledger records parent {str(row.parent_hash)[:12]} → child {str(row.child_hash)[:12]}")
    ok_detail = f"request #{rid}: kind, target, spec, submitter, reason, submission time and hashes match; done"
    checks.append(Check(names[0], not problems, "; ".join(problems) or ok_detail))

    done = [e for e in led.events(rid) if e["event"] == "done"]
    naming = [e for e in done if _dict(e["detail"]).get("child") == child]
    if len(done) == 1 and naming:
        checks.append(Check(names[1], True, f"one completion event ({done[0]['ts']}) naming child {str(child)[:12]}"))
    elif not done:
        checks.append(Check(names[1], False, f"no completion event for request #{rid}"))
    else:
        seen = ", ".join(str(_dict(e["detail"]).get("child"))[:12] for e in done)
        checks.append(Check(names[1], False, f"{len(done)} completion event(s) for request #{rid}, naming {seen}"))

    checks.append(lineage)
    return checks


def _lineage_check(name: str, led: Ledger, parent: Any, child: Any, outcome: Any) -> Check:
    if not _is_sha256(parent) or not _is_sha256(child):
        return Check(name, False, "the certificate names no valid parent and child hashes")
    try:
        p = led.model(parent)
    except LedgerError:
        return Check(name, False, f"parent {parent[:12]} is not a version in the ledger")
    if child == parent:
        ok = outcome == OUTCOME_ALREADY_MET
        return Check(name, ok, f"child = parent {parent[:12]} (a registered version): target already met" if ok
                     else "child = parent, but the certificate does not say the target already held")  # fmt: skip
    try:
        c = led.model(child)
    except LedgerError:
        return Check(name, False, f"child {child[:12]} is not a version in the ledger")
    if c.parent_hash != p.hash:
        return Check(name, False, f"child {child[:12]} descends from {str(c.parent_hash)[:12]}, not {parent[:12]}")
    return Check(name, True, f"{parent[:12]} → {child[:12]} are consecutive versions")


def _short(v: Any, limit: int = 40) -> str:
    text = json.dumps(v, sort_keys=True, default=str) if not isinstance(v, str) else repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- HTML rendering -------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}code{font-size:90%;word-break:break-all}.ok{color:#060}.muted{color:#666}
.outcome{font-size:110%;padding:.5em .8em;border-left:4px solid #060;background:#f4faf4}"""

_SHOWN = (("forget_acc", "UA: forget-set accuracy"), ("retain_acc", "RA: retain-set accuracy"),
          ("test_acc", "TA: test accuracy"), ("test_retain_acc", "TA: test accuracy (test-retain)"),
          ("mia_auc", "MIA AUC (0.5 = like unseen data)"), ("mia_efficacy", "MIA-efficacy"))  # fmt: skip


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v))


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in pairs)


def _outcome_text(cert: dict[str, Any]) -> str:
    un = _dict(cert.get("unlearning"))
    outcome = cert.get("outcome")
    if outcome == OUTCOME_FORGOTTEN:
        return (f"Forgotten: the stop rule ({_fmt(un.get('rule'))}) was met — {_fmt(un.get('stop_reason'))} after "
                f"{_fmt(un.get('steps'))} step(s); the model changed.")  # fmt: skip
    if outcome == OUTCOME_EXACT:
        return (f"Forgotten exactly: {_fmt(un.get('exact'))} (SISA); the served model is the one SISA training "
                "without the deleted rows gives.")  # fmt: skip
    if outcome == OUTCOME_ALREADY_MET:
        return ("The stop target already held before unlearning: no step was taken and the model is unchanged "
                "(child = parent).")  # fmt: skip
    return f"Outcome: {_fmt(outcome)}"


def render_html(cert: dict[str, Any]) -> str:
    """A self-contained HTML page of a sealed certificate (any JSON content renders; missing parts show –)."""
    req = _dict(cert.get("request"))
    models = _dict(cert.get("models"))
    method = _dict(cert.get("method"))
    un = _dict(cert.get("unlearning"))
    ver = _dict(cert.get("verification"))
    metrics = _dict(ver.get("metrics"))
    ref = _dict(_dict(ver.get("reference")).get("metrics"))
    rid = _fmt(req.get("id"))
    batch = req.get("batch") if isinstance(req.get("batch"), list) else []
    signed = " Signed with HMAC-SHA256 (hmac_sha256)." if cert.get(HMAC_FIELD) is not None else ""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Deletion certificate — request #{rid}</title><style>{_CSS}</style></head><body>",
        f"<h1>Deletion certificate — request #{rid}</h1>",
        f"<p class='muted'>Issued {_fmt(cert.get('created'))} by ready2unlearn "
        f"{_fmt(_dict(cert.get('versions')).get('ready2unlearn'))}. "
        f"certificate_sha256 <code>{_fmt(cert.get(HASH_FIELD))}</code>.{signed}</p>",
        f"<p class='outcome'><b>{_outcome_text(cert)}</b></p>",
        "<h2>Request</h2><table>",
        _rows(
            [
                ("id", req.get("id")),
                ("kind", req.get("kind")),
                ("target", req.get("target")),
                ("submitter", req.get("submitter")),
                ("reason", req.get("reason")),
                ("submitted", req.get("created")),
                ("served", cert.get("created")),
                ("batch", ", ".join(f"#{i}" for i in batch) or "served alone"),
                ("forgotten samples", req.get("forget_size")),
            ]
        ),
        "</table><h2>Models</h2><table><tr><th></th><th>sha256</th><th>file</th></tr>",
        *(
            f"<tr><th>{role}</th><td><code>{_fmt(_dict(models.get(role)).get('sha256'))}</code></td>"
            f"<td><code>{_fmt(_dict(models.get(role)).get('file'))}</code></td></tr>"
            for role in ("parent", "child")
        ),
        "</table>",
        f"<h2>Method</h2><p><b>{_fmt(method.get('name'))}</b> — stopped: {_fmt(un.get('stop_reason'))} after "
        f"{_fmt(un.get('steps'))} steps ({_fmt(un.get('seconds'))} s); stop target reached: {_fmt(un.get('reached'))}"
        "</p>",
        f"<pre>{html.escape(json.dumps(method.get('config'), indent=2, default=str))}</pre>",
        "<h2>Verification</h2><table><tr><th>metric</th><th>model</th>"
        + ("<th>retrained</th><th>|gap|</th>" if ref else "")
        + "</tr>",
    ]
    for key, label in _SHOWN:
        if key not in metrics:
            continue
        v = metrics[key]
        row = f"<tr><th>{html.escape(label)}</th><td>{_fmt(v)}</td>"
        if ref:
            r = ref.get(key)
            gap = abs(v - r) if isinstance(v, float) and isinstance(r, float) else None
            row += f"<td>{_fmt(r)}</td><td>{_fmt(gap)}</td>"
        parts.append(row + "</tr>")
    parts.append("</table>")
    gaps = _dict(ver.get("gaps"))
    if gaps:
        parts.append(f"<p>Avg. Gap to the retrained model: <b>{_fmt(gaps.get('avg_gap'))}</b></p>")
    elif not ref:
        parts.append(f"<p class='muted'>No retrained reference: {_fmt(ver.get('reference_note'))}</p>")
    floors = _dict(ver.get("relearn_reference"))
    for name, r in _dict(ver.get("relearn")).items():
        r = _dict(r)
        curve = r.get("curve") if isinstance(r.get("curve"), list) else []
        start = _dict(curve[0]).get("forget_acc") if curve else None
        floor = _dict(floors.get(name)).get("final_forget_acc")
        extra = f" (retrained floor {_fmt(floor)})" if floor is not None else ""
        parts.append(f"<p>Relearning attack <code>{html.escape(name)}</code>: forget accuracy "
                     f"{_fmt(start)} → {_fmt(r.get('final_forget_acc'))}{extra}</p>")  # fmt: skip
    per_request = _dict(ver.get("per_request"))
    if per_request:
        parts.append("<h3>Per request of the batch</h3><table><tr><th>request</th><th>forget samples</th>"
                     "<th>UA</th></tr>")  # fmt: skip
        for prid, v in per_request.items():
            v = _dict(v)
            parts.append(f"<tr><td>#{html.escape(prid)}</td><td>{_fmt(v.get('forget_size'))}</td>"
                         f"<td>{_fmt(v.get('forget_acc'))}</td></tr>")  # fmt: skip
        parts.append("</table>")
    parts.append("<p class='muted'>Check it: <code>r2u certificate verify certificate.json --ledger DB</code> "
                 "re-computes this certificate's hash (and its HMAC when R2U_CERT_KEY is set), re-hashes both model "
                 "files and cross-checks the issuing ledger.</p></body></html>\n")  # fmt: skip
    return "".join(parts)
