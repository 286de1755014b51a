"""The build's context: TensorFlow is imported without the cyclic garbage collector."""

import gc

import pytest

from generator.stages.context import collector_paused


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_then_restored_and_what_the_block_made_is_frozen(enabled):
    was_enabled = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with collector_paused():
            assert not gc.isenabled()
            made = [[index] for index in range(5000)]
        assert gc.isenabled() == enabled
        assert gc.get_freeze_count() >= len(made)
    finally:
        gc.unfreeze()
        (gc.enable if was_enabled else gc.disable)()
