"""mytcpdump's batch formatter, the CLI's fast path, against the per-event
model: user space only (any 20 bytes are a record), so no kernel marker and
not run again in every kernel VM."""
import ctypes
import json
import socket

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bpflab.loaders.mytcpdump import Event, PacketEvent, decode, decode_columns, format_batch


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=ctypes.sizeof(PacketEvent), max_size=ctypes.sizeof(PacketEvent)), max_size=40))
def test_the_batch_formatter_prints_what_each_event_prints(raws):
    """The fast path of the CLI (format_batch: columns, no event objects)
    against the model: decode() per record, then Event.line() and
    json.dumps(Event.as_json()). Any record, flags and protocol included."""
    records = np.frombuffer(b"".join(raws), dtype=np.dtype(PacketEvent))
    events = [decode(PacketEvent.from_buffer_copy(raw)) for raw in raws]
    assert format_batch(records, as_json=False) == [e.line() for e in events]
    assert format_batch(records, as_json=True) == [json.dumps(e.as_json()) for e in events]
    columns = decode_columns(records)
    as_events = [Event(proto, socket.inet_ntoa(src.to_bytes(4, "big")), None if sport < 0 else sport,
                       socket.inet_ntoa(dst.to_bytes(4, "big")), None if dport < 0 else dport, length, frag, trunc)
                 for proto, src, sport, dst, dport, length, frag, trunc
                 in zip(*(columns[k].tolist() for k in ("proto", "src", "sport", "dst", "dport", "len", "fragment",
                                                         "l4_truncated")), strict=True)]
    assert as_events == events
