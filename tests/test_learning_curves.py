"""Learning curves from history.csv: a PNG with the losses and the validation score per epoch."""

import pytest

from keras_transformer.learning_curves import plot_learning_curves, read_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HISTORY = """epoch,accuracy,loss,seconds,val_accuracy,val_bleu,val_chrf,val_loss
1,0.10,5.0,10.0,0.12,0.5,8.0,4.6
2,0.20,4.0,9.0,0.20,2.0,15.5,4.0
3,0.30,3.5,9.0,0.25,3.5,21.0,3.8
4,0.35,3.2,9.0,0.26,3.1,20.0,3.9
"""


def test_curves_show_losses_and_validation_scores_with_the_best_epoch(tmp_path):
    (tmp_path / "history.csv").write_text(HISTORY)
    out = tmp_path / "curves.png"
    figure = plot_learning_curves(tmp_path, out, title="tiny")  # a run directory
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "history.csv"]  # no temporary file
    losses, scores = figure.axes
    assert [line.get_label() for line in losses.get_lines()] == ["training loss", "validation loss"]
    assert list(losses.get_lines()[1].get_ydata()) == [4.6, 4.0, 3.8, 3.9]
    chrf, bleu = scores.get_lines()
    assert (chrf.get_label(), bleu.get_label()) == ("validation chrF++", "validation BLEU")
    assert list(chrf.get_xdata()) == [1, 2, 3, 4] and list(chrf.get_ydata()) == [8.0, 15.5, 21.0, 20.0]
    assert "21.0 (epoch 3)" in [text.get_text() for text in scores.texts]


def test_without_scores_the_validation_accuracy_is_drawn(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_accuracy,val_loss,seconds\n1,5.0,0.1,4.0,1\n2,4.0,0.2,3.0,1\n")
    figure = plot_learning_curves(read_history(path), tmp_path / "c.png")
    (line,) = figure.axes[1].get_lines()
    assert line.get_label() == "validation token accuracy (%)" and list(line.get_ydata()) == [10.0, 20.0]


def test_curves_errors_and_command(tmp_path, capsys):
    from keras_transformer.cli import main

    with pytest.raises(FileNotFoundError, match="no history.csv"):
        plot_learning_curves(tmp_path, tmp_path / "c.png")
    (tmp_path / "history.csv").write_text(HISTORY)
    with pytest.raises(ValueError, match="expected the learning curves' file to be a .png"):
        plot_learning_curves(tmp_path, tmp_path / "c.svg")
    assert main(["curves", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    assert "Learning curves written to" in capsys.readouterr().out
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
