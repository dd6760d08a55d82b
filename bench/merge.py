"""One quality table from the runs of several `bench/quality.py` invocations.

    python bench/merge.py --out DIR [--reference random_task] [--methods a,b] [--suffix SRC_DIR +x]
        [--only SRC_DIR a,b] SRC_DIR...

Each SRC_DIR holds a runs.json. Runs are paired by seed, so they must come from one machine (checked:
the CPU and its AMX/BF16 flags) and test on one test set (checked: the degraded input's PSNR). A method
and seed found twice must agree. Writes DIR/quality.md and DIR/quality.json; the latter lists, per
source, the code hashes its runs ran, so a table that mixes code versions says so. `--suffix SRC_DIR +x`
renames that source's methods (tripled -> tripled+x): one method under two settings, paired by seed.
`--only SRC_DIR a,b` takes only those methods from that source, e.g. the full set from a run at another
budget, whose subsets are other runs under the same names.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("quality", HERE / "quality.py")
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)


def load(sources: list[Path], suffixes: dict[Path, str] | None = None,
         only: dict[Path, set[str]] | None = None) -> tuple[list[dict], dict[str, list[str]]]:
    """The runs of every source, checked to be comparable; and each source's code hashes. A source in
    `suffixes` has that suffix appended to its method names; a source in `only` gives only those methods."""
    suffixes, only = suffixes or {}, only or {}
    runs: dict[tuple[str, int], dict] = {}
    codes: dict[str, list[str]] = {}
    machine = inputs = None
    for src in sources:
        path = src / "runs.json"
        if not path.is_file():
            raise click.ClickException(f"{path} not found")
        rows = [r for r in json.loads(path.read_text()) if src not in only or r["method"] in only[src]]
        if not rows:
            raise click.ClickException(f"{path}: no runs of {', '.join(sorted(only[src]))}")
        codes[str(src)] = sorted({r.get("provenance", {}).get("code_sha256", "?") for r in rows})
        for r in rows:
            m = r.get("provenance", {}).get("machine")
            if machine is None:
                machine = m
            elif m != machine:
                raise click.ClickException(f"{path}: {r['method']} seed {r['seed']} ran on {m}, not {machine}: "
                                           "runs are only comparable on one machine")
            inp = (r["eval"]["overall"]["psnr_input"], sorted(r["eval"]["tasks"]))
            if inputs is None:
                inputs = inp
            elif inp != inputs:
                raise click.ClickException(f"{path}: {r['method']} seed {r['seed']} was tested on other images "
                                           f"(input PSNR and tasks {inp} against {inputs})")
            r = {**r, "method": r["method"] + suffixes.get(src, "")}
            key = (r["method"], r["seed"])
            if key in runs and runs[key]["eval"]["overall"] != r["eval"]["overall"]:
                raise click.ClickException(f"{path}: {key[0]} seed {key[1]} differs from the same run in "
                                           "another source")
            runs[key] = r
    return list(runs.values()), codes


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--reference", default="random_task", show_default=True)
@click.option("--methods", default="", help="comma-separated, in table order (default: all found).")
@click.option("--suffix", "suffixes", multiple=True, type=(click.Path(path_type=Path), str),
              help="SRC_DIR SUFFIX: append SUFFIX to the method names of that source's runs.")
@click.option("--only", "onlies", multiple=True, type=(click.Path(path_type=Path), str),
              help="SRC_DIR METHODS: take only these comma-separated methods from that source.")
def main(sources: tuple[Path, ...], out_dir: Path, reference: str, methods: str,
         suffixes: tuple[tuple[Path, str], ...], onlies: tuple[tuple[Path, str], ...]) -> None:
    named = dict(suffixes)
    only = {src: {m for m in ms.split(",") if m} for src, ms in onlies}
    for option, given in (("--suffix", named), ("--only", only)):
        unknown = set(given) - set(sources)
        if unknown:
            raise click.ClickException(f"{option} names {', '.join(map(str, sorted(unknown)))}, not a source")
    runs, codes = load(list(sources), named, only)
    names = [m for m in methods.split(",") if m] or list(dict.fromkeys(r["method"] for r in runs))
    runs = [r for r in runs if r["method"] in names]
    missing = set(names) - {r["method"] for r in runs}
    if missing:
        raise click.ClickException(f"no runs of {', '.join(sorted(missing))} in {', '.join(map(str, sources))}")
    summary = quality.summarise(runs, reference)
    summary["meta"] = dict(command="python bench/merge.py " + " ".join(sys.argv[1:]), sources=codes)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "quality.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = quality.markdown(summary, names, summary["meta"]["command"])
    table += "\nRuns from: " + "; ".join(f"{s} (code {', '.join(c)})" for s, c in codes.items()) + ".\n"
    (out_dir / "quality.md").write_text(table)
    click.echo(table)


if __name__ == "__main__":
    main()
