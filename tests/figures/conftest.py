"""Figure tests run headless: select the Agg backend before any figure module is imported."""

import matplotlib

matplotlib.use("Agg")
