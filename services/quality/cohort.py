"""Cohort outliers: within a set of videos that should look alike (a tenant's campaign, a creator's
series), the videos far from the cohort's centroid.

Robust z-score (Iglewicz & Hoaglin): 0.6745 · (d - median d) / MAD of the distances d = 1 - cosine to the
centroid, so a few outliers neither move the centre nor inflate the scale the way a mean and standard
deviation would."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.quality.checks import unit

CONSISTENCY = 0.6745  # the MAD of a normal distribution is 0.6745 sigma
# a cohort of near-identical videos: their spread in distances of a hundredth is noise, not a scale to
# measure outliers in (one variant a little farther than the others would read as many MADs away)
MIN_MAD = 0.01


@dataclass(frozen=True)
class Outlier:
    position: int
    distance: float
    z: float


def outliers(vectors: npt.ArrayLike, z_max: float = 3.5, min_mad: float = MIN_MAD) -> tuple[list[Outlier], float]:
    """The cohort's outliers (z above `z_max`, farthest first) and the cohort's median distance."""
    members = unit(vectors)
    centroid = unit(members.mean(axis=0))[0]
    distance = 1.0 - members @ centroid
    median = float(np.median(distance))
    mad = max(float(np.median(np.abs(distance - median))), min_mad)
    z = CONSISTENCY * (distance - median) / mad
    found = [Outlier(i, float(distance[i]), float(z[i])) for i in np.flatnonzero(z > z_max)]
    return sorted(found, key=lambda o: -o.z), median
