"""shoal.autoscaler: Cluster launcher and demand-driven autoscaler with EC2, GCE, Azure and Kubernetes providers.

Not built yet. This package will hold:

Reads pending demand from the head, bin-packs it onto node types, and launches or
terminates nodes through node providers (local processes, EC2, GCE, Azure, KubeRay-style
Kubernetes); also the `cloud` backend.
"""

from shoal.autoscaler._version import __version__

__all__ = ["__version__"]
