"""Search: text / image / video queries over the served collection, best segment per video."""
