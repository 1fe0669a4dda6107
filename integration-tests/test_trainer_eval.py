"""`eval`'s figures against the predictions `predict` writes: for a
regression target (linear regression and an MLP with --regression, mean
squared error, learning a noisy linear function at 1 and 2 ranks) RMSE, MAE
and R2; for classes the confusion matrix, per-class precision, recall and
F1 and their macro averages."""
import csv
import json
import math
import os
import random

import pytest

from test_trainer import TRAIN, fit_json, ompi_dirs, run  # noqa: F401 (autouse)

pytestmark = pytest.mark.skipif(not os.access(TRAIN, os.X_OK), reason="trainer not built")

NOISE = 0.1


@pytest.fixture(scope="module")
def linear_data(tmp_path_factory):
    """y = 3 x0 - 2 x1 + 0.5 + noise (sd 0.1); x2 plays no part."""
    d = tmp_path_factory.mktemp("reg")
    rnd = random.Random(11)
    paths = []
    for name, rows in (("train.csv", 4000), ("test.csv", 1000)):
        path = str(d / name)
        with open(path, "w") as f:
            f.write("x0,x1,x2,y\n")
            for _ in range(rows):
                x = [rnd.uniform(-1, 1) for _ in range(3)]
                y = 3 * x[0] - 2 * x[1] + 0.5 + rnd.gauss(0, NOISE)
                f.write("%.5f,%.5f,%.5f,%.5f\n" % (*x, y))
        paths.append(path)
    return paths


@pytest.mark.parametrize("model", [["--model", "linear"], ["--model", "mlp:16", "--regression"]])
@pytest.mark.parametrize("np", [1, 2])
def test_regression_learns_and_eval_agrees_with_predict(linear_data, tmp_path, model, np):
    train, test = linear_data
    out = str(tmp_path / "m.model")
    fit = fit_json("--train", train, "--target", "y", *model, "--epochs", "30", "--lr", "0.02",
                   "--batch", "64", "--seed", "1", "--out", out, np=np)
    assert "accuracy" not in fit and fit["loss"] < 4 * NOISE ** 2  # MSE near the noise's
    ev = json.loads(run("eval", "--model", out, "--data", test, "--target", "y", "-o",
                        "json").stdout)
    assert ev["rows"] == 1000 and "accuracy" not in ev
    assert ev["rmse"] < 2 * NOISE and ev["mae"] <= ev["rmse"] and ev["r2"] > 0.99
    # the figures are those of the predictions written, against the targets
    pred = str(tmp_path / "p.csv")
    run("predict", "--model", out, "--data", test, "--target", "y", "--out", pred)
    p = [float(r["prediction"]) for r in csv.DictReader(open(pred))]
    y = [float(r["y"]) for r in csv.DictReader(open(test))]
    assert len(p) == len(y) == 1000
    err = [a - b for a, b in zip(p, y)]
    assert math.sqrt(sum(e * e for e in err) / len(err)) == pytest.approx(ev["rmse"], rel=1e-4)
    assert sum(abs(e) for e in err) / len(err) == pytest.approx(ev["mae"], rel=1e-4)
    mean = sum(y) / len(y)
    r2 = 1 - sum(e * e for e in err) / sum((v - mean) ** 2 for v in y)
    assert r2 == pytest.approx(ev["r2"], rel=1e-4)


def test_classification_figures_are_those_of_the_predictions(tmp_path):
    data, model, pred = (str(tmp_path / n) for n in ("d.csv", "m.model", "p.csv"))
    run("gen", "--rows", "3000", "--features", "6", "--classes", "4", "--seed", "8",
        "--out", data)
    fit_json("--train", data, "--model", "mlp:16", "--epochs", "2", "--seed", "2",
             "--out", model)
    ev = json.loads(run("eval", "--model", model, "--data", data, "-o", "json").stdout)
    run("predict", "--model", model, "--data", data, "--out", pred)
    p = [int(r["prediction"]) for r in csv.DictReader(open(pred))]
    t = [int(r["label"]) for r in csv.DictReader(open(data))]
    C = 4
    cm = [[sum(1 for a, b in zip(t, p) if a == i and b == j) for j in range(C)] for i in range(C)]
    assert ev["confusion_matrix"] == cm  # rows: the true class, columns: the predicted
    assert 0.3 < ev["accuracy"] < 1 and ev["accuracy"] == pytest.approx(
        sum(cm[k][k] for k in range(C)) / len(t), abs=1e-12)
    per = []
    for k in range(C):
        prec = cm[k][k] / sum(cm[i][k] for i in range(C))
        rec = cm[k][k] / sum(cm[k])
        per.append((prec, rec, 2 * prec * rec / (prec + rec)))
        got = ev["per_class"][k]
        assert got["class"] == k
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(per[-1], abs=1e-12)
    for i, name in enumerate(("precision", "recall", "f1")):  # macro: the classes' mean
        assert ev[name] == pytest.approx(sum(x[i] for x in per) / C, abs=1e-12)
