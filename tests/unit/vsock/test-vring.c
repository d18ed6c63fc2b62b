/* SPDX-License-Identifier: MIT */
/* The memory table (guest-memory.c) and split-ring walking (vring.c) against hostile values: every range
 * overflow-safe and inside one region, chains bounded, every violation a broken ring. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <linux/virtio_ring.h>

#include "guest-memory.h"
#include "vring.h"

#define GPA 0x10000u
#define UVA 0x7f0000000000u
#define SIZE 0x10000u

static void test_memory_translate(void **state) {
        static uint8_t a[SIZE], b[SIZE];
        GuestMemory m = {};
        uint8_t *p = NULL;

        assert_int_equal(guest_memory_add_mapped(&m, GPA, SIZE, UVA, a), 0);
        assert_int_equal(guest_memory_add_mapped(&m, GPA + SIZE, SIZE, UVA + 2 * SIZE, b), 0);

        assert_int_equal(guest_memory_gpa(&m, GPA, 16, &p), 0);
        assert_ptr_equal(p, a);
        assert_int_equal(guest_memory_gpa(&m, GPA + SIZE - 16, 16, &p), 0);
        assert_ptr_equal(p, a + SIZE - 16);
        assert_int_equal(guest_memory_gpa(&m, GPA + SIZE + 5, 1, &p), 0);
        assert_ptr_equal(p, b + 5);
        /* The whole region, and an empty range at its very end. */
        assert_int_equal(guest_memory_gpa(&m, GPA, SIZE, &p), 0);
        assert_int_equal(guest_memory_gpa(&m, GPA + 2 * SIZE, 0, &p), 0);

        p = NULL;
        assert_int_equal(guest_memory_gpa(&m, GPA - 1, 2, &p), -EFAULT);
        assert_int_equal(guest_memory_gpa(&m, GPA + 2 * SIZE - 1, 2, &p), -EFAULT);
        /* Across two regions: refused even though both are mapped (they need not be adjacent for us). */
        assert_int_equal(guest_memory_gpa(&m, GPA + SIZE - 1, 2, &p), -EFAULT);
        /* Wrap-around attempts. */
        assert_int_equal(guest_memory_gpa(&m, UINT64_MAX - 5, 10, &p), -EFAULT);
        assert_int_equal(guest_memory_gpa(&m, GPA + 8, UINT64_MAX, &p), -EFAULT);
        assert_int_equal(guest_memory_gpa(&m, GPA + 8, UINT64_MAX - 7, &p), -EFAULT);
        assert_int_equal(guest_memory_gpa(&m, 0, 0, &p), -EFAULT);
        assert_null(p);

        assert_int_equal(guest_memory_uva(&m, UVA + 100, 10, &p), 0);
        assert_ptr_equal(p, a + 100);
        assert_int_equal(guest_memory_uva(&m, UVA + 2 * SIZE, SIZE, &p), 0);
        assert_ptr_equal(p, b);
        assert_int_equal(guest_memory_uva(&m, UVA + SIZE, 1, &p), -EFAULT);

        guest_memory_clear(&m);
        assert_int_equal(m.n_regions, 0);
        assert_int_equal(guest_memory_gpa(&m, GPA, 1, &p), -EFAULT);
}

static void test_memory_bad_regions(void **state) {
        static uint8_t a[16];
        GuestMemory m = {};

        assert_int_equal(guest_memory_add_mapped(&m, 0, 0, 0, a), -EINVAL);
        assert_int_equal(guest_memory_add_mapped(&m, UINT64_MAX - 4, 16, 0, a), -EINVAL);
        assert_int_equal(guest_memory_add_mapped(&m, 0, 16, UINT64_MAX - 4, a), -EINVAL);
        assert_int_equal(guest_memory_add_mapped(&m, 0, 16, 0, NULL), -EINVAL);
        assert_int_equal(guest_memory_add_fd(&m, 0, 16, 0, UINT64_MAX, -1), -EINVAL);
        for (unsigned i = 0; i < GUEST_MEMORY_MAX_REGIONS; i++)
                assert_int_equal(guest_memory_add_mapped(&m, i * 16, 16, i * 16, a), 0);
        assert_int_equal(guest_memory_add_mapped(&m, 1000, 16, 1000, a), -E2BIG);
        /* Bad fd: mmap fails, the table is unchanged. */
        guest_memory_clear(&m);
        assert_int_equal(guest_memory_add_fd(&m, 0, 4096, 0, 0, -1), -EBADF);
        assert_int_equal(m.n_regions, 0);
}

/* A queue of 8 in an aligned buffer: desc at 0, avail at 0x100, used at 0x200, data from 0x1000. */
typedef struct Ring {
        uint8_t *mem;
        GuestMemory m;
        Vring vr;
        struct vring_desc *desc;
        struct vring_avail *avail;
        struct vring_used *used;
} Ring;

static void ring_setup(Ring *r) {
        *r = (Ring) {};
        r->mem = aligned_alloc(4096, SIZE);
        assert_non_null(r->mem);
        memset(r->mem, 0, SIZE);
        assert_int_equal(guest_memory_add_mapped(&r->m, GPA, SIZE, UVA, r->mem), 0);
        assert_int_equal(vring_set_num(&r->vr, 8), 0);
        vring_set_addr(&r->vr, UVA, UVA + 0x100, UVA + 0x200);
        assert_int_equal(vring_map(&r->vr, &r->m), 0);
        r->vr.started = r->vr.enabled = true;
        assert_true(vring_usable(&r->vr));
        r->desc = (struct vring_desc *) r->mem;
        r->avail = (struct vring_avail *) (r->mem + 0x100);
        r->used = (struct vring_used *) (r->mem + 0x200);
}

static void ring_done(Ring *r) {
        vring_done(&r->vr);
        free(r->mem);
}

static void desc(Ring *r, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        r->desc[i] = (struct vring_desc) { .addr = addr, .len = len, .flags = flags, .next = next };
}

static void offer(Ring *r, uint16_t head) {
        r->avail->ring[r->avail->idx % 8] = head;
        r->avail->idx++;
}

static void test_vring_config(void **state) {
        Vring vr = {};
        GuestMemory m = {};
        static uint8_t mem[SIZE] __attribute__((aligned(16)));

        assert_int_equal(vring_set_num(&vr, 0), -EINVAL);
        assert_int_equal(vring_set_num(&vr, 3), -EINVAL);
        assert_int_equal(vring_set_num(&vr, 65536), -EINVAL);
        assert_int_equal(vring_set_num(&vr, VRING_MAX_SIZE), 0);
        assert_int_equal(vring_map(&vr, &m), -EINVAL); /* no addresses yet */
        assert_int_equal(vring_set_num(&vr, 8), 0);
        assert_int_equal(guest_memory_add_mapped(&m, GPA, SIZE, UVA, mem), 0);
        /* Used ring running past the end of memory. */
        vring_set_addr(&vr, UVA, UVA + 0x100, UVA + SIZE - 8);
        assert_int_equal(vring_map(&vr, &m), -EFAULT);
        /* Misaligned descriptor table. */
        vring_set_addr(&vr, UVA + 8, UVA + 0x100, UVA + 0x200);
        assert_int_equal(vring_map(&vr, &m), -EFAULT);
        vring_set_addr(&vr, UVA, UVA + 0x100, UVA + 0x200);
        assert_int_equal(vring_map(&vr, &m), 0);
        assert_false(vring_usable(&vr)); /* not started */
        vring_done(&vr);
}

static void test_vring_pop_push(void **state) {
        VringChain c;
        Ring r;

        ring_setup(&r);
        assert_int_equal(vring_pop(&r.vr, &r.m, &c), 0);

        /* readable 44 + readable 100, then writable 200 */
        desc(&r, 5, GPA + 0x1000, 44, VRING_DESC_F_NEXT, 2);
        desc(&r, 2, GPA + 0x1100, 100, VRING_DESC_F_NEXT, 7);
        desc(&r, 7, GPA + 0x2000, 200, VRING_DESC_F_WRITE, 0);
        offer(&r, 5);
        assert_int_equal(vring_pop(&r.vr, &r.m, &c), 1);
        assert_int_equal(c.head, 5);
        assert_int_equal(c.n_readable, 2);
        assert_int_equal(c.n_writable, 1);
        assert_int_equal(c.readable_len, 144);
        assert_int_equal(c.writable_len, 200);
        assert_ptr_equal(c.iov[0].iov_base, r.mem + 0x1000);
        assert_ptr_equal(c.iov[2].iov_base, r.mem + 0x2000);

        /* Unpop gives the same chain again. */
        vring_unpop(&r.vr);
        assert_int_equal(vring_pop(&r.vr, &r.m, &c), 1);
        assert_int_equal(c.head, 5);
        assert_int_equal(vring_pop(&r.vr, &r.m, &c), 0);

        vring_push(&r.vr, 5, 123);
        assert_int_equal(r.used->idx, 1);
        assert_int_equal(r.used->ring[0].id, 5);
        assert_int_equal(r.used->ring[0].len, 123);
        assert_true(vring_should_notify(&r.vr));
        r.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
        assert_false(vring_should_notify(&r.vr));

        /* A zero-length descriptor at the very end of memory is fine. */
        desc(&r, 0, GPA + SIZE, 0, 0, 0);
        offer(&r, 0);
        assert_int_equal(vring_pop(&r.vr, &r.m, &c), 1);
        assert_null(r.vr.broken);
        ring_done(&r);
}

typedef void (*Breaker)(Ring *r);

static void brk_outside(Ring *r) {
        desc(r, 0, GPA + SIZE - 10, 44, 0, 0);
        offer(r, 0);
}
static void brk_below(Ring *r) {
        desc(r, 0, GPA - 1, 1, 0, 0);
        offer(r, 0);
}
static void brk_wrap(Ring *r) {
        desc(r, 0, UINT64_MAX - 10, 44, 0, 0);
        offer(r, 0);
}
static void brk_loop(Ring *r) {
        desc(r, 0, GPA + 0x1000, 10, VRING_DESC_F_NEXT, 1);
        desc(r, 1, GPA + 0x1000, 10, VRING_DESC_F_NEXT, 0);
        offer(r, 0);
}
static void brk_self_loop(Ring *r) {
        desc(r, 3, GPA + 0x1000, 10, VRING_DESC_F_NEXT, 3);
        offer(r, 3);
}
static void brk_indirect(Ring *r) {
        desc(r, 0, GPA + 0x1000, 16, VRING_DESC_F_INDIRECT, 0);
        offer(r, 0);
}
static void brk_next_range(Ring *r) {
        desc(r, 0, GPA + 0x1000, 10, VRING_DESC_F_NEXT, 8);
        offer(r, 0);
}
static void brk_head_range(Ring *r) {
        offer(r, 9);
}
static void brk_avail_jump(Ring *r) {
        r->avail->idx = 9;
}
static void brk_read_after_write(Ring *r) {
        desc(r, 0, GPA + 0x1000, 10, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
        desc(r, 1, GPA + 0x1000, 10, 0, 0);
        offer(r, 0);
}

static void test_vring_broken(void **state) {
        static const struct {
                Breaker f;
                const char *reason_part;
        } cases[] = {
                { brk_outside, "outside" },        { brk_below, "outside" },
                { brk_wrap, "outside" },           { brk_loop, "loop" },
                { brk_self_loop, "loop" },         { brk_indirect, "indirect" },
                { brk_next_range, "next index" },  { brk_head_range, "beyond the queue size" },
                { brk_avail_jump, "avail index" }, { brk_read_after_write, "readable descriptor after" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                VringChain c;
                Ring r;

                ring_setup(&r);
                cases[i].f(&r);
                assert_int_equal(vring_pop(&r.vr, &r.m, &c), -EBADMSG);
                assert_non_null(r.vr.broken);
                assert_non_null(strstr(r.vr.broken, cases[i].reason_part));
                assert_false(vring_usable(&r.vr));
                /* Sticky: a valid chain afterwards is not looked at. */
                desc(&r, 4, GPA + 0x1000, 44, 0, 0);
                offer(&r, 4);
                assert_int_equal(vring_pop(&r.vr, &r.m, &c), -EBADMSG);
                assert_int_equal(r.used->idx, 0);
                ring_done(&r);
        }
}

static void test_vring_full_chain(void **state) {
        /* A chain of exactly num descriptors is legal; avail moved by exactly num is legal. */
        VringChain c;
        Ring r;

        ring_setup(&r);
        for (unsigned i = 0; i < 8; i++)
                desc(&r, i, GPA + 0x1000 + i, 1, i < 7 ? VRING_DESC_F_NEXT : 0, (uint16_t) (i + 1));
        for (unsigned i = 0; i < 8; i++)
                offer(&r, 0);
        assert_int_equal(vring_pop(&r.vr, &r.m, &c), 1);
        assert_int_equal(c.n_readable, 8);
        assert_int_equal(c.readable_len, 8);
        ring_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_memory_translate), cmocka_unit_test(test_memory_bad_regions),
                cmocka_unit_test(test_vring_config),     cmocka_unit_test(test_vring_pop_push),
                cmocka_unit_test(test_vring_broken),     cmocka_unit_test(test_vring_full_chain),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
