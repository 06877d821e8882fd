"""Training-data curation: k-means over segment vectors, SemDeDup within clusters, a Parquet manifest."""
