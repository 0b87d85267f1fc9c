"""PNG plots for the eval report: loss curve and confusion matrix."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(history: list[dict], path: Path) -> None:
    plt = _pyplot()
    steps = [h["step"] for h in history if "loss" in h]
    losses = [h["loss"] for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, losses, label="train loss", lw=1)
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def confusion_matrix(report: dict, path: Path, title: str = "") -> None:
    plt = _pyplot()
    labels, cm = report["labels"], report["confusion_matrix"]
    size = max(3.5, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 20:
        top = max(max(row) for row in cm) or 1
        for i, row in enumerate(cm):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black", fontsize=8)
    ax.set_title(title or f"accuracy {report['accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
