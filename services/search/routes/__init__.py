"""The search service's routers, one per concern: search (text, image, video, similar), videos (the newest, one
video, its duplicates), cache (the generation cache), qc (checks on demand, cohort outliers), curation (runs,
manifests), playback (play links, media), recommend, page (the web page and its config), login (one-time login
links). `models.py`: what several read."""
