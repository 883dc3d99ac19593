"""Markdown pipe tables, as written into the leaderboard and comparison files, and generated blocks of
hand-written reports."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path


def pipe_table(columns: Sequence[str], rows: Iterable[Sequence[object]], right: Collection[str] = ()) -> list[str]:
    """The lines of a Markdown pipe table.

    Args:
        columns: Column titles.
        rows: One sequence of cells per row, already formatted (``str()`` is applied).
        right: Titles of the right-aligned (numeric) columns.

    Raises:
        ValueError: If a row has a different number of cells than ``columns``.

    Example:
        >>> pipe_table(["objective", "AUROC"], [["firm", "0.81"]], right={"AUROC"})
        ['| objective | AUROC |', '|---|---:|', '| firm | 0.81 |']
    """
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "".join("---:|" if title in right else "---|" for title in columns)]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a table row has {len(row)} cells for {len(columns)} columns: {list(row)}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return lines


def number_cell(value: float, spec: str) -> str:
    """``value`` formatted with ``spec``, or an empty cell when it is NaN.

    Example:
        >>> number_cell(0.81234, ".3f"), number_cell(float("nan"), ".3f")
        ('0.812', '')
    """
    return "" if math.isnan(value) else format(value, spec)


def mean_std_cell(mean: float, std: float, spec: str) -> str:
    """``"mean ± std"`` formatted with ``spec``; the mean alone when the std is NaN (one seed has
    no spread: writing "± 0" would claim one).

    Example:
        >>> mean_std_cell(0.81234, 0.0123, ".3f"), mean_std_cell(0.81234, float("nan"), ".3f")
        ('0.812 ± 0.012', '0.812')
    """
    return format(mean, spec) + ("" if math.isnan(std) else f" ± {format(std, spec)}")


def replace_block(text: str, start: str, end: str, body: str, where: Path) -> str:
    """``text`` with everything from ``start`` to ``end`` (markers kept) replaced by ``body``.

    Raises:
        SystemExit: If ``text`` (read from ``where``) lacks a marker: the report scripts stop
            with that one line.

    Example:
        >>> replace_block("a <!-- s --> old <!-- e --> z", "<!-- s -->", "<!-- e -->", "new", Path("r.md"))
        'a <!-- s -->\\n\\nnew\\n\\n<!-- e --> z'
    """
    if start not in text or end not in text:
        raise SystemExit(f"error: {where} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    return head + start + "\n\n" + body + "\n\n" + end + rest.split(end, 1)[1]
