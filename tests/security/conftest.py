"""The case fixtures of the staff handler tests (cases made through the domain functions, staff
members, the audit log), shared here rather than written twice."""

from tests.cases_handlers.conftest import audits, move, new_case, staff_member

__all__ = ["audits", "move", "new_case", "staff_member"]
