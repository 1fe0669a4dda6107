"""Report lines from a Python training script to Trainyard, standard
library only.  Inside a Trainyard task each call appends one line to the
file named by $TRAINYARD_REPORT (one write, O_APPEND, so lines from several
processes never mix); outside Trainyard the calls do nothing.

    import trainyard_report as ty
    for epoch in range(epochs):
        ...
        ty.log_metric("loss", loss, step=epoch)
        ty.set_progress((epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}")
    ty.set_tag("optimizer", "sgd")
    ty.log_artifact("model", "model.pt")   # uploaded when the task exits 0
    ty.register_model("fashion", "model")  # ... and registered as a new version

The master keeps every metric point (`trainyard metrics RUN --plot`), the
latest tags (`trainyard compare RUN RUN`), and stores artifacts by content
(`trainyard artifacts RUN`).  Bad input raises ValueError.
"""
import math
import os

__all__ = ["log_metric", "log_artifact", "register_model", "set_progress", "set_tag",
           "enabled"]

_MAX_LINE = 4096


def enabled():
    """Whether reports go anywhere (the process runs as a Trainyard task)."""
    return bool(os.environ.get("TRAINYARD_REPORT"))


def _word(what, s):
    s = str(s)
    if not s or any(c.isspace() for c in s):
        raise ValueError(f"{what} must be a non-empty word without spaces, got {s!r}")
    return s


def _text(what, s):
    s = str(s)
    if "\n" in s or "\r" in s or "\0" in s:
        raise ValueError(f"{what} must be one line, got {s!r}")
    return s


def _number(what, v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"{what} must be finite, got {v!r}")
    return f


def _emit(line):
    data = (line + "\n").encode()
    if len(data) > _MAX_LINE:
        raise ValueError(f"report line longer than {_MAX_LINE} bytes")
    path = os.environ.get("TRAINYARD_REPORT")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def log_metric(name, value, step=None):
    """One point of metric `name` (kept as a series; `trainyard status`
    shows the latest)."""
    line = f"metric {_word('name', name)} {_number('value', value)!r}"
    if step is not None:
        if int(step) != step:
            raise ValueError(f"step must be an integer, got {step!r}")
        line += f" {int(step)}"
    _emit(line)


def set_progress(fraction, text=""):
    """How far the task is, 0..1, with an optional short text."""
    f = _number("fraction", fraction)
    if not 0 <= f <= 1:
        raise ValueError(f"fraction must be in 0..1, got {fraction!r}")
    _emit(f"progress {f!r} {_text('text', text)}".rstrip())


def set_tag(key, value):
    """A key/value label of the task (the latest value of a key is kept)."""
    value = _text("value", value).strip()
    if not value:
        raise ValueError("a tag needs a value")
    _emit(f"tag {_word('key', key)} {value}")


def log_artifact(name, path):
    """Upload `path` (inside the task's directory) as output `name` when the
    task exits 0."""
    path = _text("path", path).strip()
    if not path:
        raise ValueError("an artifact needs a path")
    _emit(f"artifact {_word('name', name)} {path}")


def register_model(model, artifact):
    """Register output `artifact` (declared under outputs:, or logged with
    log_artifact) as a new version of model `model` when the task succeeds,
    with this run's params and this task's metrics."""
    artifact = _text("artifact", artifact).strip()
    if not artifact:
        raise ValueError("register_model needs an artifact name")
    _emit(f"register {_word('model', model)} {artifact}")
