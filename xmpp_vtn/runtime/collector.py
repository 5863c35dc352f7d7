"""Tune Python's cyclic garbage collector for a long-running VTN process.

Why: slixmpp builds every incoming stanza as an element tree before any check of the VTN can
refuse it, so a stanza of 30,000 empty elements (120 KB) allocates about 75,000 tracked objects.
With the interpreter's default thresholds (700, 10, 10) that is some 120 young collections and,
because the tree survives them, a **full** collection of the whole process for almost every such
stanza: 36-38 in a burst of 40, 25-60 ms each on a shared 2-core machine (0.9-2.2 s in all), more
in a process holding more objects (measured by tests/test_hostile.py; docs/operations.md). Two
standard remedies, both process-wide:

- ``gc.freeze()`` once start-up is done: the modules, the schema and the VTN's own long-lived
  objects move to the permanent generation, which no collection scans again. A full collection
  then costs what the process allocated since (5-8 times less here).
- A young-generation threshold of 10,000 instead of 700: collections happen 14 times less often,
  and the older generations' thresholds, which count young collections, are reached 14 times
  less often too. A young collection then scans at most 10,000 objects (well under 1 ms).

Both together took the full collections of that burst from 36-38 (0.9-2.2 s) to 2 (3-15 ms).

Because the collector belongs to the whole process, the library never changes it by itself:
``VTNComponent(tune_gc=True)`` asks for it, and ``xmpp-vtn run`` (whose process is the VTN's)
does by default (``tune_gc = false`` in its configuration opts out). The price: an object alive
at the freeze that later becomes part of a garbage cycle is never freed (reference counting
still frees the others), so freeze only once what lives as long as the process is built.
"""
from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

#: The young generation's threshold while serving (the interpreter's default is 700).
SERVING_YOUNG_THRESHOLD = 10_000


def tune_for_serving(young_threshold: int = SERVING_YOUNG_THRESHOLD) -> None:
    """Freeze what the process holds now and raise the young generation's threshold.

    Call it once start-up is done (modules imported, configuration read, the VTN built): the
    objects alive then are never scanned again. The older generations' thresholds are kept as
    they are. Calling it again freezes what was allocated since, and is otherwise harmless.

    >>> import gc
    >>> tune_for_serving()                                  # doctest: +SKIP
    >>> gc.get_threshold()[0], gc.get_freeze_count() > 0    # doctest: +SKIP
    (10000, True)
    """
    if young_threshold < 1:
        raise ValueError("young_threshold must be at least 1")
    gc.collect()                    # garbage from start-up goes now, not into the permanent generation
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)
    log.debug("garbage collector tuned: %d objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold())
