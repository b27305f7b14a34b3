"""Training curves from MLflow metric histories, drawn for one run or overlaid for several."""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure

from whisper_assets import charts

# MLflow metric -> (chart title, axis label); the names the training loop logs.
CURVES = {"loss": ("Training loss", "loss"), "wer": ("Validation WER", "WER"), "lr": ("Learning rate", "lr")}


def curve_figures(histories: Mapping[str, Mapping[str, charts.Series]]) -> dict[str, Figure]:
    """One figure per curve with every run's points (run label -> metric -> points); curves no run logged are
    left out."""
    return {
        metric: charts.lines(
            {run: history[metric] for run, history in histories.items() if history.get(metric)},
            title,
            "step",
            axis,
        )
        for metric, (title, axis) in CURVES.items()
        if any(history.get(metric) for history in histories.values())
    }
