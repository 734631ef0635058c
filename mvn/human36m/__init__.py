"""Human3.6M: facts, label files, datasets, the per-action protocol (mvn.human36m.benchmark)."""
