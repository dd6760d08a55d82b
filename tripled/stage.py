"""What every stage script shares: its click command class, which turns a TripleD error (bad params,
dataset or stored file) into the message alone and exit status 1."""
from __future__ import annotations

from pathlib import Path

import click

from tripled.errors import TripledError


class StageCommand(click.Command):
    """`@click.command(cls=StageCommand)`: errors a user can fix are printed without a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TripledError as e:
            raise click.ClickException(str(e)) from None


def params_option(sections: str):
    return click.option("--params", "params_path", default="params.yaml", show_default=True,
                        type=click.Path(path_type=str), help=f"params file (sections {sections}).")


def path_option(flag: str, dest: str, default: str, help: str | None = None):
    """An option naming a file or folder (a Path), with its default shown in --help."""
    return click.option(flag, dest, default=default, show_default=True, type=click.Path(path_type=Path), help=help)


def index_option(help: str = "the sample index written by prepare."):
    return path_option("--index", "index_path", "data/index.parquet", help)


def restorer_option():
    return click.option("--restorer", default="all", show_default=True,
                        help="the entry of params.yaml's `restorers` to make (dvc.yaml runs one per entry).")


def for_restorer(path: Path, restorer: str) -> Path:
    """A path option's value with {restorer} filled in."""
    return Path(str(path).replace("{restorer}", restorer))
