import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread: on a busy 2-core machine two OpenMP threads spin against each other."""
    yield
