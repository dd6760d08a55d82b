"""Stage warmup (for select.method loss and select.task_budget need): the per-sample loss of a briefly
trained proxy restorer and the input error into data/warmup.parquet; with warmup.steps 0 (the default)
it trains nothing and writes NaN."""
from pathlib import Path

import click

from tripled.data.index import load_index
from tripled.device import use_available_cores
from tripled.params import load_section
from tripled.publish import atomic
from tripled.selection.warmup import WarmupParams, warmup_loss
from tripled.stage import StageCommand, index_option, params_option, path_option


@click.command(cls=StageCommand)
@params_option("'warmup', 'data'")
@index_option()
@path_option("--out", "out", "data/warmup.parquet")
def main(params_path: str, index_path: Path, out: Path) -> None:
    """Train a small proxy restorer on a random share of the training samples; its L1 on every one."""
    use_available_cores()
    p = load_section(WarmupParams, "warmup", params_path)
    loss = warmup_loss(load_index(index_path, params_path), p)
    with atomic(out) as tmp:
        loss.to_parquet(tmp, index=False)
    click.echo(f"warmup: {int(loss['loss'].notna().sum())} samples with a loss ({p.steps} proxy steps)")


if __name__ == "__main__":
    main()
