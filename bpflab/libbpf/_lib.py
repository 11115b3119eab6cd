"""ctypes prototypes for the parts of the system libbpf (libbpf.so.1) we use.

Only declarations live here; the typed Python API is in the sibling modules.
Structs mirror libbpf 1.1's opts structs field for field; libbpf reads only
the fields that fit in the `sz` we pass, so newer libbpf versions accept them.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)

lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

# Kernel UAPI constants (linux/bpf.h, linux/if_link.h).
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_XDP = 37  # enum bpf_attach_type
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_ATTACHED_NONE, XDP_ATTACHED_DRV, XDP_ATTACHED_SKB, XDP_ATTACHED_HW, XDP_ATTACHED_MULTI = range(5)
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1

BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_RINGBUF = 27
PERCPU_MAP_TYPES = {BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH}


class bpf_link_create_opts(Structure):
    # Only the leading fields; sz covers exactly these.
    _fields_ = [("sz", c_size_t), ("flags", c_uint32), ("_pad", c_uint32)]


class bpf_xdp_query_opts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("prog_id", c_uint32),
        ("drv_prog_id", c_uint32),
        ("hw_prog_id", c_uint32),
        ("skb_prog_id", c_uint32),
        ("attach_mode", c_uint8),
    ]


class bpf_map_create_opts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("btf_fd", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("inner_map_fd", c_uint32),
        ("map_flags", c_uint32),
        ("map_extra", c_uint64),
        ("numa_node", c_uint32),
        ("map_ifindex", c_uint32),
    ]


class bpf_test_run_opts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class bpf_tc_hook(Structure):
    _fields_ = [("sz", c_size_t), ("ifindex", c_int), ("attach_point", c_int), ("parent", c_uint32)]


class bpf_tc_opts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("prog_fd", c_int),
        ("flags", c_uint32),
        ("prog_id", c_uint32),
        ("handle", c_uint32),
        ("priority", c_uint32),
    ]


PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
RING_SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)


def _proto(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


obj_p = c_void_p
prog_p = c_void_p
map_p = c_void_p

bpf_object__open_file = _proto("bpf_object__open_file", obj_p, c_char_p, c_void_p)
bpf_object__load = _proto("bpf_object__load", c_int, obj_p)
bpf_object__close = _proto("bpf_object__close", None, obj_p)
bpf_object__next_program = _proto("bpf_object__next_program", prog_p, obj_p, prog_p)
bpf_object__next_map = _proto("bpf_object__next_map", map_p, obj_p, map_p)
bpf_object__btf = _proto("bpf_object__btf", c_void_p, obj_p)

bpf_program__name = _proto("bpf_program__name", c_char_p, prog_p)
bpf_program__section_name = _proto("bpf_program__section_name", c_char_p, prog_p)
bpf_program__fd = _proto("bpf_program__fd", c_int, prog_p)
bpf_program__type = _proto("bpf_program__type", c_int, prog_p)
bpf_program__set_log_buf = _proto("bpf_program__set_log_buf", c_int, prog_p, c_void_p, c_size_t)
bpf_program__set_autoload = _proto("bpf_program__set_autoload", c_int, prog_p, ctypes.c_bool)
bpf_program__set_log_level = _proto("bpf_program__set_log_level", c_int, prog_p, c_uint32)


class bpf_prog_info(Structure):
    """struct bpf_prog_info (linux/bpf.h), up to verified_insns (5.16): a
    kernel fills what it knows and leaves the rest zero."""

    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("tag", c_uint8 * 8), ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32), ("jited_prog_insns", c_uint64), ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64), ("created_by_uid", c_uint32), ("nr_map_ids", c_uint32), ("map_ids", c_uint64),
        ("name", ctypes.c_char * 16), ("ifindex", c_uint32), ("gpl_compatible", c_uint32), ("netns_dev", c_uint64),
        ("netns_ino", c_uint64), ("nr_jited_ksyms", c_uint32), ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64), ("jited_func_lens", c_uint64), ("btf_id", c_uint32),
        ("func_info_rec_size", c_uint32), ("func_info", c_uint64), ("nr_func_info", c_uint32),
        ("nr_line_info", c_uint32), ("line_info", c_uint64), ("jited_line_info", c_uint64),
        ("nr_jited_line_info", c_uint32), ("line_info_rec_size", c_uint32), ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32), ("prog_tags", c_uint64), ("run_time_ns", c_uint64), ("run_cnt", c_uint64),
        ("recursion_misses", c_uint64), ("verified_insns", c_uint32), ("attach_btf_obj_id", c_uint32),
        ("attach_btf_id", c_uint32), ("_pad", c_uint32),
    ]

bpf_map__name = _proto("bpf_map__name", c_char_p, map_p)
bpf_map__fd = _proto("bpf_map__fd", c_int, map_p)
bpf_map__type = _proto("bpf_map__type", c_int, map_p)
bpf_map__key_size = _proto("bpf_map__key_size", c_uint32, map_p)
bpf_map__value_size = _proto("bpf_map__value_size", c_uint32, map_p)
bpf_map__max_entries = _proto("bpf_map__max_entries", c_uint32, map_p)
bpf_map__inner_map = _proto("bpf_map__inner_map", map_p, map_p)

bpf_map_lookup_elem = _proto("bpf_map_lookup_elem", c_int, c_int, c_void_p, c_void_p)
bpf_map_update_elem = _proto("bpf_map_update_elem", c_int, c_int, c_void_p, c_void_p, c_uint64)
bpf_map_delete_elem = _proto("bpf_map_delete_elem", c_int, c_int, c_void_p)
bpf_map_get_next_key = _proto("bpf_map_get_next_key", c_int, c_int, c_void_p, c_void_p)
bpf_obj_get = _proto("bpf_obj_get", c_int, c_char_p)
bpf_map_lookup_batch = _proto("bpf_map_lookup_batch", c_int, c_int, c_void_p, c_void_p, c_void_p, c_void_p,
                              POINTER(c_uint32), c_void_p)
bpf_map_update_batch = _proto("bpf_map_update_batch", c_int, c_int, c_void_p, c_void_p, POINTER(c_uint32), c_void_p)
bpf_map_delete_batch = _proto("bpf_map_delete_batch", c_int, c_int, c_void_p, POINTER(c_uint32), c_void_p)
bpf_map_create = _proto("bpf_map_create", c_int, c_int, c_char_p, c_uint32, c_uint32, c_uint32, c_void_p)
bpf_btf_get_fd_by_id = _proto("bpf_btf_get_fd_by_id", c_int, c_uint32)
btf__fd = _proto("btf__fd", c_int, c_void_p)
bpf_map_get_fd_by_id = _proto("bpf_map_get_fd_by_id", c_int, c_uint32)
bpf_obj_pin = _proto("bpf_obj_pin", c_int, c_int, c_char_p)
bpf_obj_get_info_by_fd = _proto("bpf_obj_get_info_by_fd", c_int, c_int, c_void_p, POINTER(c_uint32))
libbpf_num_possible_cpus = _proto("libbpf_num_possible_cpus", c_int)

bpf_prog_load = _proto("bpf_prog_load", c_int, c_int, c_char_p, c_char_p, c_void_p, c_size_t, c_void_p)
bpf_link_create = _proto("bpf_link_create", c_int, c_int, c_int, c_int, POINTER(bpf_link_create_opts))
bpf_xdp_attach = _proto("bpf_xdp_attach", c_int, c_int, c_int, c_uint32, c_void_p)
bpf_xdp_detach = _proto("bpf_xdp_detach", c_int, c_int, c_uint32, c_void_p)
bpf_xdp_query = _proto("bpf_xdp_query", c_int, c_int, c_int, POINTER(bpf_xdp_query_opts))
bpf_prog_test_run_opts = _proto("bpf_prog_test_run_opts", c_int, c_int, POINTER(bpf_test_run_opts))

bpf_tc_hook_create = _proto("bpf_tc_hook_create", c_int, POINTER(bpf_tc_hook))
bpf_tc_attach = _proto("bpf_tc_attach", c_int, POINTER(bpf_tc_hook), POINTER(bpf_tc_opts))
bpf_tc_detach = _proto("bpf_tc_detach", c_int, POINTER(bpf_tc_hook), POINTER(bpf_tc_opts))

ring_buffer__new = _proto("ring_buffer__new", c_void_p, c_int, RING_SAMPLE_FN, c_void_p, c_void_p)
ring_buffer__free = _proto("ring_buffer__free", None, c_void_p)
ring_buffer__poll = _proto("ring_buffer__poll", c_int, c_void_p, c_int)
ring_buffer__consume = _proto("ring_buffer__consume", c_int, c_void_p)

bpf_map__btf_key_type_id = _proto("bpf_map__btf_key_type_id", c_uint32, map_p)
bpf_map__btf_value_type_id = _proto("bpf_map__btf_value_type_id", c_uint32, map_p)
btf__type_by_id = _proto("btf__type_by_id", c_void_p, c_void_p, c_uint32)
btf__name_by_offset = _proto("btf__name_by_offset", c_char_p, c_void_p, c_uint32)
btf__resolve_size = _proto("btf__resolve_size", ctypes.c_int64, c_void_p, c_uint32)

libbpf_set_print = _proto("libbpf_set_print", c_void_p, PRINT_FN)
_vsnprintf = _libc.vsnprintf
_vsnprintf.restype = c_int
_vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]

# libbpf's own diagnostics go to the "libbpf" logger instead of stderr, so a
# command-line tool prints one clear line of its own on failure.
_log = logging.getLogger("libbpf")
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


_captures = threading.local()


@PRINT_FN
def _print_to_logging(level, fmt, args):
    buf = ctypes.create_string_buffer(4096)
    _vsnprintf(buf, len(buf), fmt, args)
    text = buf.value.decode(errors="replace").rstrip()
    for sink in getattr(_captures, "sinks", ()):
        if level == 0:  # warnings: what explains a failure
            sink.append(text.removeprefix("libbpf: "))
    _log.log(_LEVELS.get(level, logging.DEBUG), "%s", text)
    return 0


@contextlib.contextmanager
def captured_warnings():
    """The libbpf warnings this thread causes inside the block."""
    sink: list[str] = []
    _captures.sinks = [*getattr(_captures, "sinks", ()), sink]
    try:
        yield sink
    finally:
        _captures.sinks = [s for s in _captures.sinks if s is not sink]


libbpf_set_print(_print_to_logging)

bpf_link_get_next_id = _proto("bpf_link_get_next_id", c_int, c_uint32, POINTER(c_uint32))
bpf_link_get_fd_by_id = _proto("bpf_link_get_fd_by_id", c_int, c_uint32)
bpf_link_detach = _proto("bpf_link_detach", c_int, c_int)
btf__find_by_name_kind = _proto("btf__find_by_name_kind", ctypes.c_int32, c_void_p, c_char_p, c_uint32)
bpf_map__set_max_entries = _proto("bpf_map__set_max_entries", c_int, map_p, c_uint32)
bpf_map__set_inner_map_fd = _proto("bpf_map__set_inner_map_fd", c_int, map_p, c_int)
bpf_map__initial_value = _proto("bpf_map__initial_value", c_void_p, map_p, POINTER(ctypes.c_size_t))
btf__parse_elf = _proto("btf__parse_elf", c_void_p, c_char_p, c_void_p)
btf__free = _proto("btf__free", None, c_void_p)
btf__type_cnt = _proto("btf__type_cnt", c_uint32, c_void_p)
