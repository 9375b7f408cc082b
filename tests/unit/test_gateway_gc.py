"""The gateway's garbage collector settings: startup's objects frozen out of collection, young ones in big batches."""

import gc

from services.gateway.app import GC_YOUNG_THRESHOLD, settle_garbage_collection


def test_startup_objects_are_frozen_and_young_ones_collected_in_big_batches():
    threshold = gc.get_threshold()
    try:
        settle_garbage_collection()
        assert gc.get_freeze_count() > 0, "what exists at startup is out of every collection"
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
