"""Stage prepare: read the dataset (or build the demo set) into data/index.parquet."""
from pathlib import Path

import click

from tripled.io import LayoutError, publish, staging_path
from tripled.params import DataParams, load_section
from tripled.prepare import DataError, build_index


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (section 'data').")
@click.option("--out", default="data", show_default=True, type=click.Path(path_type=Path), help="output folder.")
def main(params_path: str, out: Path) -> None:
    """Index the paired dataset (one row per sample), synthesise pairs where asked, split by source image."""
    p = load_section(DataParams, "data", params_path)
    # The index marks a finished run: an old one must not outlive a run killed while it rewrites prepared/.
    (out / "index.parquet").unlink(missing_ok=True)
    try:
        index, rejects = build_index(p, out / "prepared")
    except (LayoutError, DataError) as e:
        raise click.ClickException(str(e)) from None
    staged = staging_path(out / "rejects.csv")
    rejects.to_csv(staged, index=False)
    publish(staged, out / "rejects.csv")
    staged = staging_path(out / "index.parquet")
    index.to_parquet(staged, index=False)
    publish(staged, out / "index.parquet")
    counts = index.groupby(["task", "split"]).size().unstack(fill_value=0)
    click.echo(f"prepare: {len(index)} samples, {len(rejects)} rejected\n{counts.to_string()}")
    if len(rejects):
        click.echo(f"prepare: rejected files by reason, see {out / 'rejects.csv'}:\n"
                   + rejects.reason.value_counts().sort_index().to_string())


if __name__ == "__main__":
    main()
