"""Imports every table module so SQLModel.metadata (create_all, Alembic) sees all of them."""

import importlib

for _name in ("questions", "cases", "staff", "notices", "audit", "lockout", "feedback", "leases"):
    try:
        importlib.import_module(f"models.{_name}")
    except ModuleNotFoundError as e:  # area not built yet
        if e.name != f"models.{_name}":
            raise
