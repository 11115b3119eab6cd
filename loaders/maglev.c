// SPDX-License-Identifier: GPL-2.0
/* Maglev's table fill, the loop of loaders/maglev.py's build() in C: the
 * same function of the same inputs (each backend's permutation and weight,
 * in rank order), so a table is the same whichever computes it
 * (tests/test_maglev.py holds both to tests/maglev_model.py). Python spent
 * 7.5 ms on a table of 16381 entries; programming ten thousand services
 * needs it a hundred times faster. Loaded with ctypes from the build
 * directory (make builds it beside the BPF objects); build() computes the
 * table in Python where it is not there.
 *
 * Turns: the next goes to the backend whose (turns taken + 1) / weight is
 * smallest, ties to the lower rank; with equal weights, plain rotation. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

struct turn {
	uint64_t num; /* due at num / weight */
	uint32_t weight;
	uint32_t rank;
};

static int earlier(const struct turn *a, const struct turn *b)
{
	uint64_t x = a->num * b->weight, y = b->num * a->weight; /* both < 2^17 * 2^16 */

	return x < y || (x == y && a->rank < b->rank);
}

static void sift_down(struct turn *heap, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		struct turn t;

		if (l < n && earlier(&heap[l], &heap[m]))
			m = l;
		if (r < n && earlier(&heap[r], &heap[m]))
			m = r;
		if (m == i)
			return;
		t = heap[i];
		heap[i] = heap[m];
		heap[m] = t;
		i = m;
	}
}

/* The next free entry down a backend's permutation: entry j of it is
 * (offset + j * skip) mod size, walked by adding skip (no division per
 * step; *at is entry *tried's position). -1 if none within `size` steps
 * (a broken permutation: an error, not a loop without end). */
static int64_t claim(const int32_t *table, uint32_t size, uint32_t skip, uint32_t *at, uint32_t *tried)
{
	while (*tried < size) {
		uint32_t c = *at;

		(*tried)++;
		*at = c + skip >= size ? c + skip - size : c + skip; /* c, skip < size < 2^31 */
		if (table[c] < 0)
			return c;
	}
	return -1;
}

/* Fill table[size] with ranks 0..n-1. Returns 0, or -EINVAL (bad input or
 * a permutation that found no free entry), -ENOMEM. */
int maglev_fill(uint32_t size, uint32_t n, const uint32_t *offset, const uint32_t *skip, const uint32_t *weight,
		int32_t *table)
{
	uint32_t *tried, *at, filled = 0, r, equal = 1;
	struct turn *heap;
	int err = 0;

	if (!size || !n)
		return -EINVAL;
	for (r = 0; r < size; r++)
		table[r] = -1;
	for (r = 0; r < n; r++) {
		if (!weight[r] || !skip[r] || skip[r] >= size || offset[r] >= size || size >= 1u << 31)
			return -EINVAL;
		equal &= weight[r] == weight[0];
	}
	tried = calloc(n, sizeof(*tried));
	at = calloc(n, sizeof(*at));
	heap = calloc(n, sizeof(*heap));
	if (!tried || !at || !heap) {
		err = -ENOMEM;
		goto out;
	}
	for (r = 0; r < n; r++)
		at[r] = offset[r];
	if (equal) {
		while (filled < size) {
			for (r = 0; r < n && filled < size; r++, filled++) {
				int64_t c = claim(table, size, skip[r], &at[r], &tried[r]);

				if (c < 0) {
					err = -EINVAL;
					goto out;
				}
				table[c] = (int32_t)r;
			}
		}
		goto out;
	}
	for (r = 0; r < n; r++)
		heap[r] = (struct turn){ .num = 1, .weight = weight[r], .rank = r };
	for (r = n / 2; r-- > 0;)
		sift_down(heap, n, r);
	while (filled < size) {
		int64_t c;

		r = heap[0].rank;
		c = claim(table, size, skip[r], &at[r], &tried[r]);
		if (c < 0) {
			err = -EINVAL;
			goto out;
		}
		table[c] = (int32_t)r;
		filled++;
		heap[0].num++;
		sift_down(heap, n, 0);
	}
out:
	free(tried);
	free(at);
	free(heap);
	return err;
}

/* maglev_fill, each entry then written as label[rank] in 16 bits: the
 * table as xdp_dnat holds it (an index into the service's own backends),
 * without a pass through Python's integers. */
int maglev_fill_labels(uint32_t size, uint32_t n, const uint32_t *offset, const uint32_t *skip,
		       const uint32_t *weight, const uint16_t *label, uint16_t *out)
{
	int32_t *table = malloc((size_t)size * sizeof(*table));
	uint32_t i;
	int err;

	if (!table)
		return -ENOMEM;
	err = maglev_fill(size, n, offset, skip, weight, table);
	for (i = 0; !err && i < size; i++)
		out[i] = label[table[i]];
	free(table);
	return err;
}
