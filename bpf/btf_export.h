/* SPDX-License-Identifier: GPL-2.0 */
#ifndef BPFLAB_BTF_EXPORT_H
#define BPFLAB_BTF_EXPORT_H

/* clang emits BTF only for types reachable from globals and function
 * signatures, not for a struct used only through a local pointer (a ring
 * buffer record), and only a forward declaration for one reached through
 * an inner map's definition. An unused global pointer to an array of it
 * puts the whole `struct NAME` into the object's BTF, where the Python
 * loader checks its ctypes mirror (a plain pointer would reuse a forward
 * declaration already there). */
#define BTF_EXPORT_STRUCT(NAME) struct NAME (*__btf_export_##NAME)[1] __attribute__((unused))

#endif
