/* SPDX-License-Identifier: MIT */
/* OTEL_EXPORTER_OTLP_* parsing: headers (trimming, percent-decoding, empty entries, rejects), endpoints,
 * compression, timeout, protocol. */

#include <errno.h>
#include <string.h>

#include "collector-test.h"
#include "otlp-env.h"

static const char *const *fake_env;

static const char *fake_get(const char *name) {
        for (const char *const *p = fake_env; p && *p; p += 2)
                if (strcmp(p[0], name) == 0)
                        return p[1];
        return NULL;
}

static void test_headers(void **state) {
        char **h;
        size_t n;

        assert_int_equal(otlp_parse_headers_env(" Authorization = Basic%20dXNlcjpw%3D%3D , ,x-tenant=a,", &h, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(h[0], "Authorization=Basic dXNlcjpw==");
        assert_string_equal(h[1], "x-tenant=a");
        for (size_t i = 0; i < n; i++)
                free(h[i]);
        free(h);

        assert_int_equal(otlp_parse_headers_env("", &h, &n), 0);
        assert_int_equal(n, 0);
        free(h);

        assert_int_equal(otlp_parse_headers_env("novalue", &h, &n), -EINVAL);
        assert_int_equal(otlp_parse_headers_env("=v", &h, &n), -EINVAL);
        assert_int_equal(otlp_parse_headers_env("a=%zz", &h, &n), -EINVAL);
        assert_int_equal(otlp_parse_headers_env("a=%4", &h, &n), -EINVAL);
        assert_int_equal(otlp_parse_headers_env("a=x%0d%0aEvil: 1", &h, &n), -EINVAL); /* header injection */
        assert_int_equal(otlp_parse_headers_env("a=%00", &h, &n), -EINVAL);
}

static void test_config(void **state) {
        OtlpConfig c;
        OtlpEnv e = {};
        const char *bad = NULL;

        otlp_config_init(&c);
        fake_env = (const char *const[]) { "OTEL_EXPORTER_OTLP_ENDPOINT",
                                           "http://collector:4318",
                                           "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                                           "https://logs.example/v1/logs",
                                           "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                                           "https://metrics.example/otlp/v1/metrics",
                                           "OTEL_EXPORTER_OTLP_HEADERS",
                                           "api-key=s3cret",
                                           "OTEL_EXPORTER_OTLP_COMPRESSION",
                                           "none",
                                           "OTEL_EXPORTER_OTLP_TIMEOUT",
                                           "2500",
                                           "OTEL_EXPORTER_OTLP_PROTOCOL",
                                           "http/protobuf",
                                           NULL };
        assert_int_equal(otlp_config_from_env(&c, &e, fake_get, &bad), 0);
        assert_string_equal(c.endpoint, "http://collector:4318");
        assert_null(c.traces_endpoint);
        assert_string_equal(c.logs_endpoint, "https://logs.example/v1/logs");
        assert_string_equal(c.metrics_endpoint, "https://metrics.example/otlp/v1/metrics");
        assert_int_equal(c.n_headers, 1);
        assert_string_equal(c.headers[0], "api-key=s3cret");
        assert_false(c.gzip);
        assert_int_equal(c.request_timeout_ns, UINT64_C(2500) * 1000000);
        otlp_env_done(&e);

        /* Nothing set: nothing changes. */
        otlp_config_init(&c);
        fake_env = NULL;
        assert_int_equal(otlp_config_from_env(&c, &e, fake_get, &bad), 0);
        assert_null(c.endpoint);
        assert_true(c.gzip);
        assert_int_equal(c.n_headers, 0);

        fake_env = (const char *const[]) { "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", NULL };
        assert_int_equal(otlp_config_from_env(&c, &e, fake_get, &bad), -EPROTONOSUPPORT);
        assert_string_equal(bad, "OTEL_EXPORTER_OTLP_PROTOCOL");
        fake_env = (const char *const[]) { "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318", NULL };
        assert_int_equal(otlp_config_from_env(&c, &e, fake_get, &bad), -EINVAL);
        assert_string_equal(bad, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        fake_env = (const char *const[]) { "OTEL_EXPORTER_OTLP_TIMEOUT", "10s", NULL };
        assert_int_equal(otlp_config_from_env(&c, &e, fake_get, &bad), -EINVAL);
        fake_env = (const char *const[]) { "OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", NULL };
        assert_int_equal(otlp_config_from_env(&c, &e, fake_get, &bad), -EINVAL);
        fake_env = (const char *const[]) { "OTEL_EXPORTER_OTLP_HEADERS", "x", NULL };
        assert_int_equal(otlp_config_from_env(&c, &e, fake_get, &bad), -EINVAL);
        assert_string_equal(bad, "OTEL_EXPORTER_OTLP_HEADERS");
        otlp_env_done(&e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_headers),
                cmocka_unit_test(test_config),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
