"""shoal.serve: HTTP model serving with Ray Serve's API.

Not built yet. This package will hold:

Deployments of replicas behind an HTTP proxy (starlette and uvicorn), handles for
composition, request batching and autoscaling on load.
"""

from shoal.serve._version import __version__

__all__ = ["__version__"]
