"""Quality control of generated videos, over the embeddings we index: prompt alignment, style deviation
from references, temporal consistency (`checks.py`), and cohort outliers (`cohort.py`).

A shared package: the QC stage (`services/qc`) runs the checks on every indexed upload that asks for them,
the search API runs the same checks on demand and lists a cohort's outliers."""
