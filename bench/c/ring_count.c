// SPDX-License-Identifier: GPL-2.0
/* The C reference for the ring consumer benchmark: libbpf's
 * ring_buffer__poll with a callback that only counts, on the ring map with
 * the given id, for the given seconds; or, with "drain", what is in the
 * ring now, once (ring_buffer__consume). Prints {"consumed": N, "seconds": S}.
 *
 *     ring_count MAP_ID SECONDS
 *     ring_count MAP_ID drain
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned long long consumed;

static int count_record(void *ctx, void *data, size_t size)
{
	(void)ctx;
	(void)data;
	(void)size;
	consumed++;
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct ring_buffer *rb;
	double start, seconds;
	int fd, err;

	if (argc != 3) {
		fprintf(stderr, "usage: ring_count MAP_ID SECONDS|drain\n");
		return 2;
	}
	fd = bpf_map_get_fd_by_id(atoi(argv[1]));
	if (fd < 0) {
		fprintf(stderr, "ring_count: map id %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	rb = ring_buffer__new(fd, count_record, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "ring_count: ring_buffer__new: %s\n", strerror(errno));
		return 2;
	}
	if (!strcmp(argv[2], "drain")) {
		start = now();
		err = ring_buffer__consume(rb);
		if (err < 0) {
			fprintf(stderr, "ring_count: ring_buffer__consume: %s\n", strerror(-err));
			return 1;
		}
		printf("{\"consumed\": %llu, \"seconds\": %.6f}\n", consumed, now() - start);
		return 0;
	}
	seconds = atof(argv[2]);
	/* Ready: the benchmark starts producing once it reads this line. */
	printf("ready\n");
	fflush(stdout);
	start = now();
	while (now() - start < seconds) {
		err = ring_buffer__poll(rb, 100);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "ring_count: ring_buffer__poll: %s\n", strerror(-err));
			return 1;
		}
	}
	/* What is left in the ring when time is up counts too. */
	ring_buffer__consume(rb);
	printf("{\"consumed\": %llu, \"seconds\": %.3f}\n", consumed, now() - start);
	ring_buffer__free(rb);
	close(fd);
	return 0;
}
