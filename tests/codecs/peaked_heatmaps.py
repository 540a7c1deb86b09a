"""Heatmaps like a trained network's (gaussian peaks at sub-pixel positions on a faint ripple), from a closed form so
that MMPose's side environment and the tests build the same maps without sharing a file: `peaked_heatmaps()` ->
float32 [N, K, 64, 48]. Some peaks sit on or next to the border, one map is all negative. Pure numpy."""

import numpy as np


def peaked_heatmaps(n: int = 2, k: int = 17, h: int = 64, w: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = np.zeros((n, k, h, w))
    for i in range(n):
        for j in range(k):
            t = i * k + j
            x = 0.3 + (t * 7.37) % (w - 0.6)  # sub-pixel, the whole width, borders included
            y = 0.3 + (t * 11.13) % (h - 0.6)
            sigma = 1.5 + (t % 3) * 0.5
            amp = 0.6 + 0.4 * ((t * 0.61) % 1.0)
            ripple = 0.02 * np.sin(0.7 * xx + 0.3 * t) * np.cos(0.5 * yy - 0.2 * t)
            maps[i, j] = amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)) + ripple
    maps[0, 1] -= 1.0  # no positive value
    return maps.astype(np.float32)
