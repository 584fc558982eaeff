"""Test-suite configuration: the Hypothesis settings profile named by ``HYPOTHESIS_PROFILE``.

``ci`` (the default), ``dev`` or ``thorough`` (:data:`theory.strategies.PROFILES`); e.g.
``HYPOTHESIS_PROFILE=thorough python -m pytest tests/theory/test_properties.py``.
"""

from theory.strategies import load_profile

load_profile()
