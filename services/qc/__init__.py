"""The QC stage: checks every indexed generated video (one whose metadata carries a prompt and/or
references) and publishes `videos.qc`. The checks themselves live in `services/quality`."""
