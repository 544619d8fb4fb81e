"""Operations tests reuse the case fixtures (cases made through the domain, staff, the outbox)."""

from tests.cases_handlers.conftest import new_case, queued, staff_member  # noqa: F401
