"""Certificates: what was asked, which model served it, how, and the evidence that it worked.

``certificate.json`` holds the request, the parent and child model hashes (with paths to their
safetensors files, relative to the certificate), the method and its resolved config, and the
verification results (UA/RA/TA, membership inference, relearning attack, the gap to a retrained model when
one was given). ``certificate_sha256`` is the sha256 of the canonical JSON of everything else (sorted
keys, no whitespace, non-finite numbers as ``null``), so changing any field without recomputing it is
detected. ``certificate.html`` is the same content for people; it carries the same hash.

:func:`verify_certificate` re-computes the self-hash and re-hashes both model files. It proves the
certificate is intact and the files are the ones it names; like any self-hash it is not a signature: who
may rewrite the certificate *and* its hash must be limited by where it is stored.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ready2unlearn.artifacts import atomic_write, sha256_file, write_json
from ready2unlearn.errors import R2UError

CERT_JSON = "certificate.json"
CERT_HTML = "certificate.html"
HASH_FIELD = "certificate_sha256"


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


def canonical_bytes(cert: dict[str, Any]) -> bytes:
    """The bytes the self-hash is computed over: canonical JSON of ``cert`` without its hash field."""
    body = {k: v for k, v in cert.items() if k != HASH_FIELD}
    return json.dumps(_finite(body), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()  # fmt: skip


def seal(cert: dict[str, Any]) -> dict[str, Any]:
    """Returns ``cert`` (made strict-JSON) with its ``certificate_sha256``."""
    body = _finite({k: v for k, v in cert.items() if k != HASH_FIELD})
    return {**body, HASH_FIELD: hashlib.sha256(canonical_bytes(body)).hexdigest()}


def write_certificate(out_dir: str | Path, cert: dict[str, Any]) -> Path:
    """Seals ``cert`` and writes ``certificate.json`` and ``certificate.html`` atomically into ``out_dir``.

    Returns:
        The path of ``certificate.json``.
    """
    out = Path(out_dir)
    sealed = seal(cert)
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
    if not isinstance(data, dict) or data.get("kind") != "ready2unlearn.certificate":
        raise R2UError(f"{p} is not a ready2unlearn certificate")
    return p, data


def verify_certificate(path: str | Path) -> Verification:
    """Re-checks a certificate: its own hash, and the sha256 of the parent and child model files it names.

    Args:
        path: ``certificate.json`` (or its folder, or ``certificate.html``).

    Returns:
        A :class:`Verification`; ``ok`` is true only when every check passed.

    Raises:
        R2UError: If the file cannot be read as a certificate at all.
    """
    p, cert = load_certificate(path)
    result = Verification(p)
    recorded = cert.get(HASH_FIELD)
    try:
        actual = hashlib.sha256(canonical_bytes(cert)).hexdigest()
    except ValueError as e:  # a non-finite number was written into the file by hand
        actual = f"unhashable ({e})"
    result.checks.append(Check("certificate sha256", recorded == actual,
                               f"recorded {str(recorded)[:16]}…, computed {actual[:16]}…"))  # fmt: skip
    html_path = p.with_name(CERT_HTML)
    if html_path.is_file():
        found = str(recorded) in html_path.read_text(encoding="utf-8")
        result.checks.append(Check("certificate.html names the same hash", found, str(html_path.name)))
    for role in ("parent", "child"):
        model = (cert.get("models") or {}).get(role) or {}
        expected, rel = model.get("sha256"), model.get("file")
        if not expected or not rel:
            result.checks.append(Check(f"{role} model", False, "the certificate names no file or hash"))
            continue
        f = (p.parent / rel).resolve()
        if not f.is_file():
            result.checks.append(Check(f"{role} model sha256", False, f"{f} is missing"))
            continue
        got = sha256_file(f)
        detail = f"{expected[:16]}… matches" if got == expected else f"expected {expected[:16]}…, file has {got[:16]}…"
        result.checks.append(Check(f"{role} model sha256", got == expected, detail))
    return result


# -- HTML rendering -------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}code{font-size:90%;word-break:break-all}.ok{color:#060}.muted{color:#666}"""

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


def render_html(cert: dict[str, Any]) -> str:
    """A self-contained HTML page of a sealed certificate."""
    req = cert["request"]
    models = cert["models"]
    ver = cert.get("verification") or {}
    metrics = ver.get("metrics") or {}
    ref = (ver.get("reference") or {}).get("metrics") or {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Deletion certificate — request #{req['id']}</title><style>{_CSS}</style></head><body>",
        f"<h1>Deletion certificate — request #{req['id']}</h1>",
        f"<p class='muted'>Issued {_fmt(cert.get('created'))} by ready2unlearn "
        f"{_fmt(cert.get('versions', {}).get('ready2unlearn'))}. "
        f"certificate_sha256 <code>{_fmt(cert.get(HASH_FIELD))}</code></p>",
        "<h2>Request</h2><table>",
        _rows(
            [
                ("id", req["id"]),
                ("kind", req["kind"]),
                ("target", req["target"]),
                ("submitter", req["submitter"]),
                ("reason", req["reason"]),
                ("submitted", req["created"]),
                ("served", cert.get("created")),
                ("batch", ", ".join(f"#{i}" for i in req.get("batch") or []) or "served alone"),
                ("forgotten samples", req.get("forget_size")),
            ]
        ),
        "</table><h2>Models</h2><table><tr><th></th><th>sha256</th><th>file</th></tr>",
        *(
            f"<tr><th>{role}</th><td><code>{_fmt(models[role]['sha256'])}</code></td>"
            f"<td><code>{_fmt(models[role]['file'])}</code></td></tr>"
            for role in ("parent", "child")
        ),
        "</table>",
        f"<h2>Method</h2><p><b>{_fmt(cert['method']['name'])}</b> — stopped: "
        f"{_fmt(cert.get('unlearning', {}).get('stop_reason'))} after {_fmt(cert.get('unlearning', {}).get('steps'))} "
        f"steps ({_fmt(cert.get('unlearning', {}).get('seconds'))} s)</p>",
        f"<pre>{html.escape(json.dumps(cert['method']['config'], indent=2))}</pre>",
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
    if ver.get("gaps"):
        parts.append(f"<p>Avg. Gap to the retrained model: <b>{_fmt(ver['gaps'].get('avg_gap'))}</b></p>")
    elif not ref:
        parts.append(f"<p class='muted'>No retrained reference: {_fmt(ver.get('reference_note'))}</p>")
    for name, r in (ver.get("relearn") or {}).items():
        floor = (ver.get("relearn_reference") or {}).get(name, {}).get("final_forget_acc")
        extra = f" (retrained floor {_fmt(floor)})" if floor is not None else ""
        parts.append(f"<p>Relearning attack <code>{html.escape(name)}</code>: forget accuracy "
                     f"{_fmt(r['curve'][0]['forget_acc'])} → {_fmt(r['final_forget_acc'])}{extra}</p>")  # fmt: skip
    if ver.get("per_request") or {}:
        parts.append("<h3>Per request of the batch</h3><table><tr><th>request</th><th>forget samples</th>"
                     "<th>UA</th></tr>")  # fmt: skip
        for rid, v in ver["per_request"].items():
            parts.append(f"<tr><td>#{html.escape(rid)}</td><td>{_fmt(v.get('forget_size'))}</td>"
                         f"<td>{_fmt(v.get('forget_acc'))}</td></tr>")  # fmt: skip
        parts.append("</table>")
    parts.append("<p class='muted'>Check it: <code>r2u certificate verify certificate.json</code> re-computes this "
                 "certificate's hash and re-hashes both model files.</p></body></html>\n")  # fmt: skip
    return "".join(parts)
