/* SPDX-License-Identifier: GPL-2.0 */
#ifndef BPFLAB_BTF_EXPORT_H
#define BPFLAB_BTF_EXPORT_H

/* clang emits BTF only for types reachable from globals and function
 * signatures, not for a struct used only through a local pointer (a ring
 * buffer record). An unused global pointer puts `struct NAME` into the
 * object's BTF, where the Python loader checks its ctypes mirror. */
#define BTF_EXPORT_STRUCT(NAME) struct NAME *__btf_export_##NAME __attribute__((unused))

#endif
