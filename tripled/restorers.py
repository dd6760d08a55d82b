"""Which restorers the pipeline makes (section `restorers` of params.yaml): each entry is one distilled
set and one restoration model, trained and scored on its tasks. One entry with every task is all-in-one
restoration; one entry per task is multi-task restoration. An entry may override keys of the select,
refine, model, train and evaluate sections for itself alone, so editing it reruns its stages only
(dvc.yaml runs those stages `foreach` entry: select@all, train@rain, ...)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import pandas as pd
from pydantic import BaseModel, Field

from tripled.errors import ParamsError
from tripled.params import Section, load_section, read_params

OVERRIDABLE = ("select", "refine", "model", "train", "evaluate")
S = TypeVar("S", bound=BaseModel)


class Restorer(Section):
    tasks: Literal["all"] | list[str] = Field("all", description="the tasks it is trained and scored on")
    select: dict[str, Any] = Field(default_factory=dict)
    refine: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    evaluate: dict[str, Any] = Field(default_factory=dict)

    def rows(self, frame: pd.DataFrame, name: str) -> pd.DataFrame:
        """The rows of `frame` (index, scores) of this restorer's tasks; a task it names must exist."""
        if self.tasks == "all":
            return frame
        missing = sorted(set(self.tasks) - set(frame["task"]))
        if missing:
            raise ParamsError(f"restorers.{name}.tasks: {missing} are not tasks of the index "
                              f"(its tasks: {sorted(frame['task'].unique())})")
        return frame[frame["task"].isin(self.tasks)]


def read_restorer(name: str, path: str | Path = "params.yaml") -> Restorer:
    entries = read_params(path).get("restorers") or {"all": {}}
    if name not in entries:
        raise ParamsError(f"{path}: no restorer {name!r} under restorers (there are: {', '.join(entries)})")
    return load_section(Restorer, "restorers", path, key=name)


def restorer_section(cls: type[S], section: str, name: str, path: str | Path = "params.yaml") -> S:
    """Section `section` of the params file with restorer `name`'s overrides of it."""
    return load_section(cls, section, path, overrides=getattr(read_restorer(name, path), section))
