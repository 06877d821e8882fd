"""The one HTTP kit every API of ours is built from (FastAPI's "bigger applications" layout).

- `keys`: API keys → tenants, checked by `KeyGuard` before a body is read;
- `deps`: the one tenant dependency (`Tenant`), read from the app's keys;
- `errors`: the one table from the error tree to HTTP statuses;
- `ops`: `/healthz`, `/readyz` and `/metrics`, the same on every service.

Each app sets `app.state.api_keys` (an `ApiKeys`) and includes its routers; routers never build apps.
"""

from services.common.http.deps import Tenant, tenant
from services.common.http.errors import STATUS_BY_ERROR, install_error_handlers, status_for
from services.common.http.keys import ApiKeys, KeyGuard
from services.common.http.ops import ops_router

__all__ = [
    "STATUS_BY_ERROR",
    "ApiKeys",
    "KeyGuard",
    "Tenant",
    "install_error_handlers",
    "ops_router",
    "status_for",
    "tenant",
]
