// SPDX-License-Identifier: GPL-2.0
/* Race a loaded XDP program against itself on two CPUs, key after key.
 *
 *     race_test_run PROG_FD FRAME_HEX KEYS REPEAT [OFFSET]
 *
 * For each of KEYS rounds, both threads (pinned to CPUs 0 and 1) wait at a
 * spin barrier, then run the program through BPF_PROG_TEST_RUN on the same
 * frame, REPEAT times each. The 32-bit word at OFFSET (default 26: the IPv4
 * source address behind an untagged Ethernet header) is the round number,
 * so every round starts on a key the program has never seen and the first
 * packets of both CPUs race to insert it. Python threads cannot do this:
 * the GIL spaces their calls microseconds apart, and the race is a few
 * hundred nanoseconds wide. The prog fd is inherited from the caller.
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int prog_fd, repeat, offset = 26;
static unsigned keys;
static unsigned char frame[2][9216];
static size_t frame_len;
static atomic_uint arrived;
static atomic_int failed;

static void wait_for_both(unsigned round)
{
	/* Two arrivals per round: both threads leave together. */
	atomic_fetch_add(&arrived, 1);
	while (atomic_load(&arrived) < 2 * (round + 1))
		;
}

static void *runner(void *arg)
{
	long cpu = (long)arg;
	unsigned char *data = frame[cpu];
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set)) {
		atomic_store(&failed, 1);
		return NULL;
	}
	for (unsigned round = 0; round < keys; round++) {
		uint32_t key = 0xac100000u + round; /* 172.16.x.y */
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data, .data_size_in = frame_len, .repeat = repeat);

		data[offset] = key >> 24;
		data[offset + 1] = key >> 16;
		data[offset + 2] = key >> 8;
		data[offset + 3] = key;
		wait_for_both(round);
		if (bpf_prog_test_run_opts(prog_fd, &opts)) {
			fprintf(stderr, "race_test_run: BPF_PROG_TEST_RUN on CPU %ld: %s\n", cpu, strerror(errno));
			atomic_store(&failed, 1);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t threads[2];
	const char *hex;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: race_test_run PROG_FD FRAME_HEX KEYS REPEAT [OFFSET]\n");
		return 2;
	}
	prog_fd = atoi(argv[1]);
	hex = argv[2];
	keys = strtoul(argv[3], NULL, 10);
	repeat = atoi(argv[4]);
	if (argc == 6)
		offset = atoi(argv[5]);
	frame_len = strlen(hex) / 2;
	if (frame_len > sizeof(frame[0]) || frame_len < (size_t)offset + 4) {
		fprintf(stderr, "race_test_run: frame of %zu bytes does not fit\n", frame_len);
		return 2;
	}
	for (size_t i = 0; i < frame_len; i++)
		sscanf(hex + 2 * i, "%2hhx", &frame[0][i]);
	memcpy(frame[1], frame[0], frame_len);
	for (long cpu = 0; cpu < 2; cpu++)
		pthread_create(&threads[cpu], NULL, runner, (void *)cpu);
	for (int cpu = 0; cpu < 2; cpu++)
		pthread_join(threads[cpu], NULL);
	return atomic_load(&failed) ? 1 : 0;
}
