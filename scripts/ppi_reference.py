"""Write tests/data/reference/ppi_mean_ci.json: inputs and ppi-python's ppi_mean_ci intervals.

Needs `pip install ppi-python==0.2.3` in a separate environment (the project does not depend on it;
see taxonomy/core/prediction_powered.py for why). Run: python scripts/ppi_reference.py
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import ppi_py

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference" / "ppi_mean_ci.json"


def case(name: str, rng: np.random.Generator, n: int, big_n: int, share: float, flip: float,
         fractional: bool) -> dict:
    truth = lambda size: (rng.random(size) < share).astype(float)
    y, y_u = truth(n), truth(big_n)
    flip_l, flip_u = rng.random(n) < flip, rng.random(big_n) < flip
    yhat = np.where(flip_l, 1 - y, y)
    yhat_u = np.where(flip_u, 1 - y_u, y_u)
    if fractional:  # a failure split between categories: values in thirds
        y = np.round(y * rng.integers(1, 4, n) / 3, 6)
        yhat = np.round(yhat * rng.integers(1, 4, n) / 3, 6)
        yhat_u = np.round(yhat_u * rng.integers(1, 4, big_n) / 3, 6)
    out = {"name": name, "gold": y.tolist(), "judge_labelled": yhat.tolist(),
           "judge_unlabelled": yhat_u.tolist()}
    for lam in (None, 1.0):
        low, high = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=0.05, lam=lam)
        out["tuned" if lam is None else "lam1"] = [float(np.ravel(low)[0]), float(np.ravel(high)[0])]
    out["point_lam1"] = float(np.ravel(ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=1.0))[0])
    return out


def main() -> None:
    rng = np.random.default_rng(2023)
    cases = [
        case("binary, accurate judge", rng, 40, 400, 0.3, 0.1, False),
        case("binary, noisy judge", rng, 25, 300, 0.5, 0.35, False),
        case("binary, small gold set", rng, 8, 120, 0.2, 0.2, False),
        case("fractional shares", rng, 50, 500, 0.4, 0.15, True),
    ]
    version = ppi_py.__version__ if hasattr(ppi_py, "__version__") else "0.2.3"
    OUT.write_text(json.dumps({"package": f"ppi-python {version}",
                               "function": "ppi_mean_ci(Y, Yhat, Yhat_unlabeled, alpha=0.05, lam=...)",
                               "cases": cases}) + "\n")


if __name__ == "__main__":
    main()
