"""Figures of runs: the overview written with every run."""
