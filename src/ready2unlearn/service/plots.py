"""The certificate's plots for the dashboard, drawn on the server as inline SVG (no JavaScript needed).

``matplotlib.figure.Figure`` is used directly, not ``pyplot``: it keeps no global state, so pages rendered
in parallel threads cannot draw into each other's figures.
"""

from __future__ import annotations

import io
from typing import Any

from matplotlib.figure import Figure

#: Metrics shown in the bar chart: key in the certificate → label.
BARS = {"forget_acc": "forget acc. (UA)", "retain_acc": "retain acc. (RA)", "test_acc": "test acc. (TA)",
        "mia_auc": "MIA AUC"}  # fmt: skip


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG goes inside an HTML page


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def metrics_svg(cert: dict[str, Any]) -> str | None:
    """Bars of the verification metrics, beside the retrained model's when the certificate has them."""
    ver = _dict(cert.get("verification"))
    metrics = _dict(ver.get("metrics"))
    ref = _dict(_dict(ver.get("reference")).get("metrics"))
    keys = [k for k in BARS if _number(metrics.get(k)) is not None]
    if not keys:
        return None
    fig = Figure(figsize=(5.2, 2.6))
    ax = fig.add_subplot()
    xs = range(len(keys))
    width = 0.38 if ref else 0.6
    ax.bar([x - (width / 2 if ref else 0) for x in xs], [_number(metrics[k]) or 0.0 for k in keys], width,
           label="served model", color="#2a6f97")  # fmt: skip
    if ref:
        ax.bar([x + width / 2 for x in xs], [_number(ref.get(k)) or 0.0 for k in keys], width,
               label="retrained", color="#adb5bd")  # fmt: skip
        ax.legend(frameon=False, fontsize=8)
    ax.set_xticks(list(xs), [BARS[k] for k in keys], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("Verification", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def relearn_svg(cert: dict[str, Any]) -> str | None:
    """Forget accuracy during the relearning attack, with the retrained model's final value as the floor."""
    ver = _dict(cert.get("verification"))
    attacks = _dict(ver.get("relearn"))
    floors = _dict(ver.get("relearn_reference"))
    curves = {name: [p for p in r.get("curve", []) if isinstance(p, dict)] for name, r in attacks.items()
              if isinstance(r, dict) and isinstance(r.get("curve"), list)}  # fmt: skip
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    fig = Figure(figsize=(5.2, 2.6))
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot([_number(p.get("step")) or 0 for p in curve], [_number(p.get("forget_acc")) or 0.0 for p in curve],
                marker="o", ms=3, label=f"unlearned ({name})")  # fmt: skip
        floor = _number(_dict(floors.get(name)).get("final_forget_acc"))
        if floor is not None:
            ax.axhline(floor, ls="--", color="#6c757d", lw=1, label=f"retrained floor ({name})")
    ax.set_xlabel("fine-tuning steps of the attack", fontsize=8)
    ax.set_ylabel("forget accuracy", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("Relearning attack", fontsize=9)
    ax.legend(frameon=False, fontsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)
