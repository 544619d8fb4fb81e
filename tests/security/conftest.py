"""The case fixtures of the staff handler tests (cases made through the domain functions, staff
members, the audit log), shared here rather than written twice."""

from tests.cases_handlers.conftest import audits, new_case, staff_member

__all__ = ["audits", "new_case", "staff_member"]
