"""The retry hint as its readers see it: the bench's clients replay the web client, and both read the gateway's reason."""

import random
import re
from pathlib import Path

from bench.loadgen import BACKOFF_BASE_SECONDS, DROP_SPREAD_SECONDS, ClosedBeforeWelcome, drop_delay
from bench.workloads.storm import handshake_gate
from services.gateway.admission import RETRY_HINT, retry_reason
from services.gateway.settings import GatewaySettings

BACKOFF_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "js" / "backoff.js"


def test_the_bench_reads_the_hint_the_gateway_writes():
    refused = ClosedBeforeWelcome(1013, retry_reason("too many handshakes on this replica", 1.25))
    assert refused.retry_after == 1.25
    assert str(refused) == "closed with 1013 before the welcome", "failures are counted by this text"
    assert ClosedBeforeWelcome(1013, "this replica lost Redis; reconnect").retry_after is None
    assert ClosedBeforeWelcome(4404, retry_reason("no room", 1)).retry_after is None, "only a 1013 carries a hint"


def test_the_web_client_parses_the_same_hint():
    source = BACKOFF_JS.read_text()
    assert RETRY_HINT.format("") == "retry_after_ms="
    assert r"/\bretry_after_ms=(\d+)\b/" in source


def test_the_first_reconnect_after_a_drop_is_spread_as_the_web_clients():
    spread_ms = int(re.search(r"dropSpread: (\d+)", BACKOFF_JS.read_text()).group(1))
    assert spread_ms == DROP_SPREAD_SECONDS * 1000
    random.seed(7)
    delays = [drop_delay() for _ in range(500)]
    assert all(BACKOFF_BASE_SECONDS / 2 <= delay <= DROP_SPREAD_SECONDS for delay in delays)
    assert max(delays) - min(delays) > DROP_SPREAD_SECONDS / 2


def test_the_storm_gateways_get_the_production_gate_unless_told_otherwise():
    fields = GatewaySettings.model_fields
    assert handshake_gate(None, None) == {
        # The two survivors share one core: each gets half of a core's rate.
        "SALA_HANDSHAKE_RATE_PER_SECOND": f"{fields['handshake_rate_per_second'].default / 2:g}",
        "SALA_HANDSHAKE_BURST": str(fields["handshake_burst"].default),
    }
    assert handshake_gate(1e6, 1000) == {"SALA_HANDSHAKE_RATE_PER_SECOND": "1e+06", "SALA_HANDSHAKE_BURST": "1000"}
