"""Fixtures of the gallery tests: the real engine only where a test is marked slow."""
import pytest
import stylecore


@pytest.fixture(autouse=True)
def real_engine_only_in_slow_tests(request, monkeypatch):
    """`make test-fast` leaves out the tests marked slow; one that computes with the real network
    without the mark fails here, so that the fast suite stays fast."""
    if request.node.get_closest_marker("slow") is not None:
        return

    def refuse(*args, **kwargs):
        pytest.fail("This test computes with the real network: mark it @pytest.mark.slow.", pytrace=False)

    monkeypatch.setattr(stylecore.Engine, "stylize", refuse)
    monkeypatch.setattr(stylecore.Engine, "preview", refuse)
