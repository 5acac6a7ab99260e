"""The admin REST API under ``/api/admin/v1``: HTTP only; every action is a service call.

Bearer tokens with the ``admin`` scope (the README's "Operate"); errors are RFC 9457 problem
details. ``routing`` holds the blueprint, authentication, errors, paging and the route table
that is also the OpenAPI document; each resource module declares its operations into it, in
the order the document lists them.
"""

from __future__ import annotations

# The OpenAPI document lists the operations in the order these modules register them.
# isort: off
from idp.admin.api import users  # noqa: F401 (each module registers its operations)
from idp.admin.api import apps  # noqa: F401
from idp.admin.api import sessions  # noqa: F401
from idp.admin.api import keys  # noqa: F401

# isort: on
from idp.admin.api.routing import OPERATIONS
from idp.admin.api.routing import bp

__all__ = ["OPERATIONS", "bp"]
