"""Empirical side of selfdistill-lab: features, noise, exact training, Monte Carlo sweeps.

Randomness only enters through explicit ``numpy.random.Generator`` / seed arguments.
"""
