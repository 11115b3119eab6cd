/* SPDX-License-Identifier: GPL-2.0 */
/* Expectations for the verifier-rejection suite, in the spirit of the
 * kernel selftests' __failure / __msg: each program says, next to its code,
 * whether the verifier must accept it and, if not, which messages its log
 * must contain, in order. They travel as BTF decl tags, which `bpflab
 * verifier DIR` (bpflab.tool.verifier) reads back from the object:
 *
 *   #include <bpflab/annotations.h>      clang -I"$(bpflab include-dir)" ...
 *
 *   __failure          the verifier must reject this program
 *   __success          the verifier must accept it (the corrected twin)
 *   __msg("text")      the log contains this text (after the previous match)
 *   __regex("re")      the log matches this Python regular expression there
 *   __msg_kernel("<6.8", "text"), __regex_kernel(...)
 *                      the same, only on kernels in that version range
 *   __retval(value)    with __success: test-run on the kernel selftests'
 *                      pkt_v4 frame, the program must return value (a
 *                      number, a macro such as TC_ACT_SHOT, or XDP_PASS...)
 */
#ifndef BPFLAB_VERIFIER_ANNOTATIONS_H
#define BPFLAB_VERIFIER_ANNOTATIONS_H

#define __bpflab_tag(text) __attribute__((btf_decl_tag("bpflab:" text)))
#define __bpflab_str(x) #x
#define __bpflab_xstr(x) __bpflab_str(x)
#define __failure __bpflab_tag("failure")
#define __success __bpflab_tag("success")
#define __msg(text) __bpflab_tag("msg=" text)
#define __regex(text) __bpflab_tag("regex=" text)
#define __msg_kernel(range, text) __bpflab_tag("msg@" range "=" text)
#define __regex_kernel(range, text) __bpflab_tag("regex@" range "=" text)
#define __retval(value) __bpflab_tag("retval=" __bpflab_xstr(value))

#endif
