"""rtml: what would moving a model from batch to streaming buy and cost?

Replays historical tables as event streams, simulates batch, stream, online and static
deployments of a scikit-learn model, and reports the accuracy, freshness and latency
differences.
"""

from __future__ import annotations

__version__ = "0.1.0"

from rtml_cli.errors import RtmlError, RtmlWarning

__all__ = ["RtmlError", "RtmlWarning", "__version__"]
