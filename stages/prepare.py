"""Stage prepare: read the dataset (or build the demo set) into data/index.parquet."""
from pathlib import Path

import click

from tripled.data.params import DataParams
from tripled.data.prepare import build_index
from tripled.params import load_section
from tripled.publish import atomic
from tripled.stage import StageCommand, params_option, path_option


@click.command(cls=StageCommand)
@params_option("'data'")
@path_option("--out", "out", "data", "output folder.")
def main(params_path: str, out: Path) -> None:
    """Index the paired dataset (one row per sample), synthesise pairs where asked, split by source image."""
    p = load_section(DataParams, "data", params_path)
    # The index marks a finished run: an old one must not outlive a run killed while it rewrites prepared/.
    (out / "index.parquet").unlink(missing_ok=True)
    index, rejects = build_index(p, out / "prepared")
    with atomic(out / "rejects.csv") as tmp:
        rejects.to_csv(tmp, index=False)
    with atomic(out / "index.parquet") as tmp:
        index.to_parquet(tmp, index=False)
    counts = index.groupby(["task", "split"]).size().unstack(fill_value=0)
    click.echo(f"prepare: {len(index)} samples, {len(rejects)} rejected\n{counts.to_string()}")
    if len(rejects):
        click.echo(f"prepare: rejected files by reason, see {out / 'rejects.csv'}:\n"
                   + rejects.reason.value_counts().sort_index().to_string())


if __name__ == "__main__":
    main()
