"""The garbage collector belongs to the process: a VTN tunes it only when asked
(``VTNComponent(tune_gc=True)``), and ``xmpp-vtn run``, whose process is the VTN's, asks by
default. What the tuning buys under huge stanzas is measured in tests/test_hostile.py."""
from __future__ import annotations

import asyncio
import gc
import json
import signal
from pathlib import Path

import pytest

from test_cli import MINIMAL, _lines_until, running_vtn, write
from xmpp_scene import run, scene
from xmpp_vtn.ops.config import ConfigError, load_config, vtn_arguments
from xmpp_vtn.runtime.collector import SERVING_YOUNG_THRESHOLD, tune_for_serving

DEFAULT_THRESHOLDS = (700, 10, 10)


def test_a_vtn_leaves_the_collector_alone_unless_asked(prosody, collector_restored):
    async def state_while_serving(**options) -> tuple[tuple[int, int, int], int]:
        async with scene(prosody, vens=0, ping_interval=None, **options):
            return gc.get_threshold(), gc.get_freeze_count()

    assert run(state_while_serving()) == (collector_restored, 0)
    thresholds, frozen = run(state_while_serving(tune_gc=True))
    assert thresholds == (SERVING_YOUNG_THRESHOLD, *collector_restored[1:])   # the older ones kept
    assert frozen > 10_000                         # the modules and the VTN's start-up objects


def test_tune_for_serving_freezes_what_exists_and_keeps_the_older_thresholds(collector_restored):
    gc.set_threshold(700, 20, 5)
    tune_for_serving(2_000)
    assert gc.get_threshold() == (2_000, 20, 5) and gc.get_freeze_count() > 0
    with pytest.raises(ValueError, match="young_threshold"):
        tune_for_serving(0)


def test_tune_gc_is_on_for_xmpp_vtn_run_unless_the_config_turns_it_off(tmp_path):
    assert vtn_arguments(load_config(write(tmp_path, MINIMAL)))["tune_gc"] is True
    assert vtn_arguments(load_config(write(tmp_path, "tune_gc = false\n" + MINIMAL)))["tune_gc"] is False
    with pytest.raises(ConfigError, match=r"tune_gc: must be true or false, got \"no\""):
        load_config(write(tmp_path, 'tune_gc = "no"\n' + MINIMAL))


PROBE = '''
import gc, json, logging

def on_start(vtn):
    logging.getLogger("probe").warning("collector %s", json.dumps(
        {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
'''


def _collector_of_a_running_vtn(prosody, tmp_path: Path, extra: str) -> dict:
    """``xmpp-vtn run`` in a process of its own, its on_start hook reporting that process's collector."""
    handlers = write(tmp_path, PROBE, "probe_handlers.py")
    config = write(tmp_path, f'{extra}vtn_id = "VTN-1"\nhandlers = "{handlers}"\nstore = ":memory:"\n'
                   f'[component]\njid = "{prosody.component}"\nsecret_env = "XMPP_VTN_SECRET"\n'
                   f'port = {prosody.component_port}\n')

    async def scenario() -> dict:
        seen: list[str] = []
        async with running_vtn(config, prosody.secret) as process:
            await _lines_until(process.stderr, "probe: collector", seen)
            process.send_signal(signal.SIGTERM)
            await _lines_until(process.stderr, "stopped", seen)
            assert await asyncio.wait_for(process.wait(), 15) == 0, "".join(seen)
        line = next(line for line in seen if "probe: collector " in line)
        return json.loads(line.split("probe: collector ", 1)[1])

    return asyncio.run(asyncio.wait_for(scenario(), 60))


def test_xmpp_vtn_run_tunes_the_collector_of_its_process(prosody, tmp_path):
    tuned = _collector_of_a_running_vtn(prosody, tmp_path, "")
    assert tuned["threshold"] == [SERVING_YOUNG_THRESHOLD, 10, 10]
    assert tuned["frozen"] > 10_000
    untouched = _collector_of_a_running_vtn(prosody, tmp_path, "tune_gc = false\n")
    assert untouched == {"threshold": list(DEFAULT_THRESHOLDS), "frozen": 0}
