"""The distilled set's card: what it was made from and how, written beside it (card.json, card.md)
so that it travels with the set through `dvc push` / `dvc pull`."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

CARD_JSON, CARD_MD = "card.json", "card.md"


def folder_size(folder: Path, exclude: tuple[str, ...] = (CARD_JSON, CARD_MD)) -> int:
    """Bytes of all files under `folder` (the card itself excluded: it would count its own size)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and p.name not in exclude)


def human_size(n: int) -> str:
    units, k, size = ("B", "KiB", "MiB", "GiB"), 0, float(n)
    while size >= 1024 and k < len(units) - 1:
        size, k = size / 1024, k + 1
    return f"{n} B" if k == 0 else f"{size:.1f} {units[k]}"


def build_card(folder: Path, manifest: pd.DataFrame, *, index_hash: str, subset_hash: str, train_samples: int,
               selection: dict, refine: dict, report: dict, features: dict) -> dict:
    """The card of the distilled set in `folder` (images and manifest already written).

    selection / refine: the params of those stages; report: refine's feature-distance report;
    features: the feature store's attributes (backbone, weights source, view).
    """
    counts = manifest.groupby(["task", "stage"]).size().unstack(fill_value=0)
    per_task = {str(task): {f"stage{int(s)}": int(n) for s, n in row.items()} | {"total": int(row.sum())}
                for task, row in counts.iterrows()}
    stages = {f"stage{int(s)}": int(n) for s, n in manifest.groupby("stage").size().items()}
    size = folder_size(folder)
    return dict(
        samples=int(len(manifest)),
        source=dict(index_sha256=index_hash, subset_sha256=subset_hash, train_samples=int(train_samples)),
        fraction=round(len(manifest) / train_samples, 6) if train_samples else None,
        selection=selection,
        refine=refine,
        features=dict(backbone=features.get("backbone"), weights=features.get("weights"), view=features.get("view")),
        feature_distance=dict(kind=report["distance"], before=report["before"], after=report["after"],
                              kl_before=report["kl_before"], kl_after=report["kl_after"],
                              mmd_before=report["mmd_before"], mmd_after=report["mmd_after"]),
        counts=dict(per_task=per_task, per_stage=stages),
        pixels=int((manifest["height"] * manifest["width"]).sum()),
        size_bytes=size,
        size=human_size(size),
    )


def render_markdown(card: dict) -> str:
    sel, fd, src = card["selection"], card["feature_distance"], card["source"]
    stage_names = sorted(card["counts"]["per_stage"])
    lines = [
        "# Distilled set",
        "",
        f"{card['samples']} pairs selected from {src['train_samples']} training samples "
        f"({100 * card['fraction']:.2f} %), {card['size']} on disk.",
        "",
        f"- source index: `sha256:{src['index_sha256'][:16]}…`, subset `sha256:{src['subset_sha256'][:16]}…`",
        f"- selection: `{sel.get('method')}`, " + ", ".join(f"{k}={v}" for k, v in sel.items() if k != "method"),
        "- refine: " + ("off (pairs copied)" if not card["refine"].get("enabled", True) else
                        ", ".join(f"{k}={v}" for k, v in card["refine"].items() if k != "enabled")),
        f"- features: {card['features']['backbone']} (weights: {card['features']['weights']}, "
        f"view: {card['features']['view']})",
        f"- feature distance to the full set ({fd['kind']}): {fd['before']:.4f} before refine, "
        f"{fd['after']:.4f} after",
        "",
        "| task | " + " | ".join(stage_names) + " | total |",
        "|---|" + "---:|" * (len(stage_names) + 1),
    ]
    for task, row in card["counts"]["per_task"].items():
        lines.append(f"| {task} | " + " | ".join(str(row.get(s, 0)) for s in stage_names) + f" | {row['total']} |")
    lines.append("| all | " + " | ".join(str(card["counts"]["per_stage"][s]) for s in stage_names)
                 + f" | {card['samples']} |")
    return "\n".join(lines) + "\n"


def write_card(folder: Path, card: dict) -> None:
    folder = Path(folder)
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    (folder / CARD_MD).write_text(render_markdown(card))


def read_card(folder: Path) -> dict:
    """The card of a distilled set folder (or of the card.json path itself)."""
    path = Path(folder)
    path = path if path.suffix == ".json" else path / CARD_JSON
    if not path.is_file():
        raise FileNotFoundError(f"no distilled-set card at {path} (is this a distilled set? `dvc pull data/distilled`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a valid card: {e}") from None
