"""What a training job's log says (App. A.3 training, read by people): one line per epoch with the epoch's mean
NLL per window (equal to the mean of its metrics rows), the step, the speed and the time left, progress lines
within an epoch, and the run named by trait/model/objective."""
import csv
import logging
import re

import numpy as np

from deepwas import training
from test_checkpoint_resume import disk, train  # noqa: F401  (the fixture: 5 windows on disk; train_prior)


def test_log_has_per_epoch_loss_and_eta(disk, tmp_path, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setattr(training, "LOG_EVERY_S", 0.0)            # a progress line after every window too
    with caplog.at_level(logging.INFO, logger="deepwas.training"):
        train(disk, tmp_path)
    text = caplog.text
    with open(tmp_path / "metrics.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    done = re.findall(r"glm/deepwas: epoch (\d)/3 done: mean NLL per window ([\d.]+) over (\d+) windows, step (\d+), "
                      r"lr \S+; [\d.]+ windows/s, elapsed \d+:\d\d:\d\d, ETA (\d+):(\d\d):(\d\d)", text)
    assert [d[0] for d in done] == ["1", "2", "3"], text
    for epoch, mean, n, step, *_ in done:
        nll = [float(r["nll"]) for r in rows if r["epoch"] == str(int(epoch) - 1)]
        assert int(n) == len(nll) == 5 and int(step) == 3 * int(epoch)
        np.testing.assert_allclose(float(mean), np.mean(nll), rtol=1e-4)
    assert done[-1][4:] == ("0", "00", "00")                      # nothing left after the last epoch
    within = re.findall(r"glm/deepwas: epoch (\d)/3 window (\d)/5: mean NLL per window", text)
    assert ("1", "1") in within and ("3", "4") in within and len(within) == 3 * 4
    assert "glm/deepwas: 5 windows x 3 epochs, accumulation 2, window by window; starting" in text


class _Source:
    """A window source of 5 windows that are never read (only the bookkeeping of the log is exercised)."""
    names, mean_n_core, order_key = [f"w{i}" for i in range(5)], 10.0, None

    def __len__(self):
        return 5

    def iter_epoch(self, seed, epoch, start=0):
        raise AssertionError("not read")


def test_eta_is_the_windows_left_at_this_runs_speed(tmp_path, caplog):
    import time

    from deepwas.priors import build_prior

    prior = build_prior("constant", 1, 0, init_log_scale=-6.0)
    t = training.Trainer(prior, _Source(), 1000.0, 0.8, training.TrainConfig.from_config("constant", epochs=3),
                         tmp_path / "ck", tmp_path / "m.tsv", label="trait/constant/deepwas")
    t.epoch, t.position, t.metrics_rows = 1, 2, [[1, 1, "w0", 0, "3.0"], [1, 2, "w1", 0, "5.0"], [0, 5, "w4", 0, "9"]]
    with caplog.at_level(logging.INFO, logger="deepwas.training"):
        t._log_progress(seen=10, t0=time.time() - 5.0, n_windows=5, done=False)   # 2 windows/s, 8 windows left
    assert re.search(r"trait/constant/deepwas: epoch 2/3 window 2/5: mean NLL per window 4.0000 over 2 windows, "
                     r"step 0, lr \S+; 2.00 windows/s, elapsed 0:00:05, ETA 0:00:04", caplog.text), caplog.text
    assert training._hms(3 * 3600 + 61.4) == "3:01:01"
