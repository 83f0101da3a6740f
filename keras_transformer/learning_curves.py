"""Learning curves from a run's history.csv: loss per epoch, and the validation score per epoch.

    >>> plot_learning_curves("runs/en-hi", "curves.png")          # a run directory or a history.csv
    >>> keras-transformer curves runs/en-hi --out curves.png       # the same from the command line

Left panel: training and validation loss. Right panel: the validation chrF++ and BLEU of greedy
translations (history.csv has them with `train --score-validation` or `--keep-best bleu|chrf`),
else the validation token accuracy (in %). The best epoch of the score is marked.
"""

from __future__ import annotations

import csv
from pathlib import Path

from keras_transformer.atomic_files import atomic_path
from keras_transformer.serve.errors import OptionError


def read_history(source) -> list[dict]:
    """Rows of history.csv (a run directory or the file itself), values as floats where they parse."""
    path = Path(source)
    if path.is_dir():
        path = path / "history.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no history.csv (expected a run directory written by `train`, or its "
                                "history.csv)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "epoch" not in rows[0]:
        raise OptionError(f"{path}: expected a history.csv with an 'epoch' column and at least one row")
    return [{key: _number(value) for key, value in row.items()} for row in rows]


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def plot_learning_curves(history, out, title: str | None = None):
    """Draws the learning curves of `history` (rows as `read_history` returns, a run directory or a
    history.csv) into the PNG `out`, atomically. Returns the matplotlib Figure (Agg, not pyplot's):
    axes[0] the losses, axes[1] the validation score(s)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows = history if isinstance(history, list) else read_history(history)
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise OptionError(f"expected the learning curves' file to be a .png, got {str(out)!r}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out}: directory {out.parent} does not exist")
    epochs = [int(row["epoch"]) for row in rows]

    def series(column, scale=1.0):
        points = [(e, row.get(column) * scale) for e, row in zip(epochs, rows) if row.get(column) is not None]
        return [e for e, _ in points], [v for _, v in points]

    figure = Figure(figsize=(10, 4), layout="constrained")
    loss_axes, score_axes = figure.subplots(1, 2)
    for column, label in (("loss", "training loss"), ("val_loss", "validation loss")):
        x, y = series(column)
        if x:
            loss_axes.plot(x, y, marker="o", markersize=3, label=label)
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss (label-smoothed cross-entropy)")
    loss_axes.legend()
    loss_axes.grid(alpha=0.3)

    scores = [(column, label) for column, label in (("val_chrf", "validation chrF++"), ("val_bleu", "validation BLEU"))
              if series(column)[0]]
    if not scores and series("val_accuracy")[0]:
        scores = [("val_accuracy", "validation token accuracy (%)")]
    for column, label in scores:
        x, y = series(column, 100.0 if column == "val_accuracy" else 1.0)
        score_axes.plot(x, y, marker="o", markersize=3, label=label)
        best = max(range(len(y)), key=lambda i: (y[i], -x[i]))
        score_axes.annotate(f"{y[best]:.1f} (epoch {x[best]})", (x[best], y[best]), textcoords="offset points",
                            xytext=(0, 7), ha="center", fontsize=8)
    score_axes.set_xlabel("epoch")
    score_axes.set_ylabel("validation score" if scores else "no validation score in history.csv")
    if scores:
        score_axes.legend()
    score_axes.grid(alpha=0.3)
    score_axes.margins(y=0.12)  # room for the best epoch's note
    for axes in (loss_axes, score_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title)
    with atomic_path(out, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return figure
