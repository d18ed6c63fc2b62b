/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kmsg.h"

static void test_parse_record(void **state) {
        const char *rec = "6,1234,5678901,-;hello world\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\n";
        KmsgRecord r;
        assert_int_equal(kmsg_parse_record(rec, strlen(rec), &r), 0);
        assert_int_equal(r.priority, 6);
        assert_int_equal(r.seq, 1234);
        assert_int_equal(r.usec, 5678901);
        assert_int_equal(r.flags, '-');
        assert_int_equal(r.message_len, strlen("hello world"));
        assert_memory_equal(r.message, "hello world", r.message_len);

        /* Newer kernels append fields after the flags; a message may contain ';' and ','. */
        const char *rec2 = "30,7,100,c,caller=T1;a;b,c";
        assert_int_equal(kmsg_parse_record(rec2, strlen(rec2), &r), 0);
        assert_int_equal(r.priority, 30);
        assert_int_equal(r.flags, 'c');
        assert_int_equal(r.message_len, 5);
        assert_memory_equal(r.message, "a;b,c", 5);
}

static void test_parse_record_malformed(void **state) {
        static const char *const bad[] = {
                "",
                "hello",
                "6,1;x",
                "6,1,2;x",
                "a,1,2,-;x",
                "6,,2,-;x",
                "6,1,2,;x",
                "6,99999999999999999999999,2,-;x",
                "99999,1,2,-;x",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                KmsgRecord r;
                assert_int_equal(kmsg_parse_record(bad[i], strlen(bad[i]), &r), -EBADMSG);
        }
}

static void test_unescape(void **state) {
        char out[64];
        const char *in = "tab\\x09here \\xe2\\x82\\xac \\xzz end\\x4";
        size_t n = kmsg_unescape(in, strlen(in), out, sizeof(out));
        const char *expected = "tab\there \xe2\x82\xac \\xzz end\\x4";
        assert_int_equal(n, strlen(expected));
        assert_memory_equal(out, expected, n);

        /* Never writes beyond out_size */
        memset(out, '#', sizeof(out));
        n = kmsg_unescape("abcdef", 6, out, 3);
        assert_int_equal(n, 3);
        assert_int_equal(out[3], '#');
}

static void test_oom(void **state) {
        pid_t pid;
        char comm[KMSG_COMM_MAX];
        const char *m;

        m = "Out of memory: Killed process 4242 (stress-ng) total-vm:1234kB, anon-rss:999kB, file-rss:0kB, "
            "shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0";
        assert_true(kmsg_parse_oom(m, strlen(m), &pid, comm));
        assert_int_equal(pid, 4242);
        assert_string_equal(comm, "stress-ng");

        m = "Memory cgroup out of memory: Killed process 77 (python3) total-vm:10kB";
        assert_true(kmsg_parse_oom(m, strlen(m), &pid, comm));
        assert_int_equal(pid, 77);
        assert_string_equal(comm, "python3");

        /* comm may contain ") " and escapes */
        m = "Out of memory: Killed process 7 (a) b\\x20c) total-vm:1kB";
        assert_true(kmsg_parse_oom(m, strlen(m), &pid, comm));
        assert_int_equal(pid, 7);
        assert_string_equal(comm, "a) b c");

        /* Without the total-vm part, the last parenthesis ends comm */
        m = "Out of memory: Killed process 8 (app)";
        assert_true(kmsg_parse_oom(m, strlen(m), &pid, comm));
        assert_string_equal(comm, "app");

        static const char *const not_oom[] = {
                "oom_reaper: reaped process 4242 (stress-ng), now anon-rss:0kB",
                "Out of memory and no killable processes...",
                "Out of memory: Killed process x (y) total-vm:1kB",
                "Out of memory: Killed process 0 (y) total-vm:1kB",
                "Out of memory: Killed process 12 y",
                "Out of memory: Killed process 12 (unterminated",
                "stress-ng invoked oom-killer: gfp_mask=0x140dca",
                "Killed process 4242 (stress-ng) total-vm:1234kB",
        };
        for (size_t i = 0; i < sizeof(not_oom) / sizeof(not_oom[0]); i++)
                assert_false(kmsg_parse_oom(not_oom[i], strlen(not_oom[i]), &pid, comm));
}

static void test_reader_counts_gaps(void **state) {
        int p[2];
        assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        KmsgReader k = { .fd = p[0] };
        char buf[KMSG_RECORD_MAX];
        KmsgRecord r;
        uint64_t lost = 99;

        assert_int_equal(kmsg_reader_read(&k, buf, sizeof(buf), &r, &lost), 0); /* nothing yet */

        const char *recs[] = {
                "6,10,0,-;first\n", "6,11,0,-;second\n", "6,15,0,-;after a gap\n", "garbage\n", "6,16,0,-;last\n"
        };
        const uint64_t expected_lost[] = { 0, 0, 3, 0 };
        const uint64_t expected_seq[] = { 10, 11, 15, 16 };
        size_t j = 0;
        for (size_t i = 0; i < 5; i++) {
                /* /dev/kmsg returns one record per read(): write one, read one */
                assert_int_equal(write(p[1], recs[i], strlen(recs[i])), (ssize_t) strlen(recs[i]));
                int n = kmsg_reader_read(&k, buf, sizeof(buf), &r, &lost);
                if (i == 3) {
                        assert_int_equal(n, 0); /* malformed: skipped */
                        continue;
                }
                assert_int_equal(n, 1);
                assert_int_equal(r.seq, expected_seq[j]);
                assert_int_equal(lost, expected_lost[j]);
                j++;
        }
        assert_int_equal(k.lost, 3);
        kmsg_reader_close(&k);
        assert_int_equal(k.fd, -1);
        close(p[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_record),       cmocka_unit_test(test_parse_record_malformed),
                cmocka_unit_test(test_unescape),           cmocka_unit_test(test_oom),
                cmocka_unit_test(test_reader_counts_gaps),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
