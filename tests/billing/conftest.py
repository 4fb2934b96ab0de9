from tests.metering.conftest import prices  # noqa: F401  (the price-book fixture, shared)
