"""The HTTP API's routers, one per area; `antal.api.app.create_app` includes them in order."""

from antal.api.routes import (
    admin,
    audit,
    catalog,
    catalog_export,
    cohorts,
    holder,
    plan,
    projects,
    receipts,
    report,
    service,
)

__all__ = ["ROUTERS"]

ROUTERS = [r.router for r in (catalog, cohorts, report, projects, receipts, audit, admin, service)]
ROUTERS.append(catalog_export.router)
ROUTERS.append(holder.router)
ROUTERS.append(plan.router)
