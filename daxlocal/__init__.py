"""A local DAX node: a server the unmodified ``amazon-dax-client`` talks to, writing through to DynamoDB.

A standalone process (``python -m daxlocal`` or ``manage.py run_dax_node``), never
imported by the web app. Standard library and botocore only. The wire protocol and the cache rules
it implements are described in ``docs/dax-protocol.md``; the module docstrings say which rule each
part implements.
"""

from .server import DaxNode, NodeConfig

__all__ = ["DaxNode", "NodeConfig"]
