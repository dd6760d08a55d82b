"""The two-stage curriculum: which samples each training step draws from."""
from __future__ import annotations

import numpy as np


class CurriculumSampler:
    """Stage 1: easy samples only. Stage 2: a `mix` share of each batch from the hard samples,
    drawn in proportion to weight x the model's running loss on them; the rest from all samples.

    The loss only re-weights samples within their task: each task keeps its share of the hard draws
    (its share of their weight). Across tasks the balanced loss still differs several-fold (haze stays
    far from clean while noise is nearly solved), and left free it starved the tasks learnt first."""

    def __init__(self, stage: np.ndarray, weight: np.ndarray, switch_step: int, mix: float, ema: float,
                 task: np.ndarray | None = None):
        self.stage, self.weight = np.asarray(stage), np.asarray(weight, np.float64)
        self.switch_step, self.mix, self.ema = switch_step, mix, ema
        self.task = np.unique(task, return_inverse=True)[1] if task is not None else np.zeros(len(stage), np.int64)
        self.running = np.full(len(stage), np.nan)

    def stage_at(self, step: int) -> int:
        return 1 if step < self.switch_step else 2

    @staticmethod
    def _draw(rng: np.random.Generator, rows: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
        return rows[rng.choice(len(rows), size=n, p=w / w.sum())] if n else rows[:0]

    def hard_weights(self, hard: np.ndarray) -> np.ndarray:
        """Draw weights of the hard rows: weight x running loss, rescaled so each task keeps its weight mass."""
        known = self.running[~np.isnan(self.running)]
        loss = np.where(np.isnan(self.running), known.mean() if len(known) else 1.0, self.running)[hard]
        w, task = self.weight[hard], self.task[hard]
        lossy = w * loss + 1e-12
        return lossy * (np.bincount(task, w) / np.maximum(np.bincount(task, lossy), 1e-300))[task]

    def draw(self, step: int, n: int, rng: np.random.Generator) -> np.ndarray:
        every = np.arange(len(self.stage))
        easy, hard = every[self.stage == 1], every[self.stage == 2]
        if self.stage_at(step) == 1 and len(easy):
            return self._draw(rng, easy, self.weight[easy], n)
        n_hard = int(rng.binomial(n, self.mix)) if len(hard) else 0
        return np.concatenate([self._draw(rng, hard, self.hard_weights(hard), n_hard) if n_hard else hard[:0],
                               self._draw(rng, every, self.weight, n - n_hard)])

    def update(self, idx: np.ndarray, losses: np.ndarray) -> None:
        for i, v in zip(idx, losses):
            old = self.running[i]
            self.running[i] = v if np.isnan(old) else self.ema * old + (1 - self.ema) * v
