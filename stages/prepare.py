"""Stage prepare: read the dataset (or build the demo set) into data/index.parquet."""
from pathlib import Path

import click

from tripled.params import DataParams, load_section
from tripled.prepare import build_index


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (section 'data').")
@click.option("--out", default="data", show_default=True, type=click.Path(path_type=Path), help="output folder.")
def main(params_path: str, out: Path) -> None:
    """Index the paired dataset (one row per sample), synthesise pairs where asked, split by source image."""
    p = load_section(DataParams, "data", params_path)
    index, rejects = build_index(p, out / "prepared")
    index.to_parquet(out / "index.parquet", index=False)
    rejects.to_csv(out / "rejects.csv", index=False)
    counts = index.groupby(["task", "split"]).size().unstack(fill_value=0)
    click.echo(f"prepare: {len(index)} samples, {len(rejects)} rejected\n{counts.to_string()}")


if __name__ == "__main__":
    main()
