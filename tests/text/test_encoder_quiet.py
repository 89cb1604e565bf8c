"""The text encoder silences transformers' loading bar only while it loads a model."""

import pytest

hf_logging = pytest.importorskip("transformers.utils.logging")

from reclib.text.encoder import _quiet_loading  # noqa: E402


@pytest.mark.parametrize("enabled", [True, False])
def test_quiet_loading_restores_the_progress_bar_setting(enabled):
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        with _quiet_loading():
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.is_progress_bar_enabled() is enabled
    finally:
        hf_logging.enable_progress_bar()
