#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// A test OTLP/HTTP receiver for tetherd's exporter. It decodes requests with the protobufjs code generated from
// the official OTLP definitions (@opentelemetry/otlp-transformer's build/src/generated/root.js, from a version
// that knows LogRecord.event_name), never from tether's own .proto files, records them, and answers as scripted.
//
//   node receiver.js PORT [--delay-ms N]  listen on 127.0.0.1:PORT; --delay-ms: answer each export request N ms
//                                         after it arrived (a slow but healthy backend)
//   node receiver.js --json-check FILE    check an OTLP/JSON lines file (tetherd's --otlp-file): prints a summary
//
// OTLP_NODE_MODULES names the node_modules directory the build's `npm ci` filled (BUILD/tests/otlp/node_modules).
//
// Control endpoints (JSON):
//   POST /control/script {"traces": [answer...], "logs": [...], "metrics": [...]}: answers used once each, in order,
//        then 200.
//        answer: {"status": 503, "retry_after": "2"} | {"status": 200, "rejected": 3} | {"status": 400}
//   GET  /control/requests: every request: {signal, time_ms, status, rejected, encoding, bytes, wire_bytes, body}
//   GET  /control/summary: {requests, spans, log_records, metrics, data_points} (items of requests answered 200)
//   POST /control/reset
"use strict";

const http = require("http");
const zlib = require("zlib");
const fs = require("fs");
const path = require("path");

if (!process.env.OTLP_NODE_MODULES) {
    console.error("receiver.js: OTLP_NODE_MODULES is not set (BUILD/tests/otlp/node_modules)");
    process.exit(2);
}
const root = require(path.join(process.env.OTLP_NODE_MODULES,
                               "@opentelemetry/otlp-transformer/build/src/generated/root.js"));
const otlp = root.opentelemetry.proto;
const Req = {
    traces: otlp.collector.trace.v1.ExportTraceServiceRequest,
    logs: otlp.collector.logs.v1.ExportLogsServiceRequest,
    metrics: otlp.collector.metrics.v1.ExportMetricsServiceRequest,
};
const PATHS = { "/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics" };
const Resp = {
    traces: otlp.collector.trace.v1.ExportTraceServiceResponse,
    logs: otlp.collector.logs.v1.ExportLogsServiceResponse,
    metrics: otlp.collector.metrics.v1.ExportMetricsServiceResponse,
};

// Metrics and their data points in a decoded metrics request.
function countMetrics(body, out) {
    for (const rm of body.resourceMetrics || [])
        for (const sm of rm.scopeMetrics || [])
            for (const m of sm.metrics || []) {
                out.metrics++;
                const d = m.gauge || m.sum || m.histogram || {};
                out.data_points += (d.dataPoints || []).length;
            }
}
const ID_FIELDS = new Set(["traceId", "spanId", "parentSpanId"]);

// Bytes ids as hex, as the API and OTLP/JSON show them.
function hexIds(o) {
    if (Array.isArray(o)) return o.map(hexIds);
    if (o && typeof o === "object") {
        const r = {};
        for (const [k, v] of Object.entries(o))
            r[k] = ID_FIELDS.has(k) && typeof v === "string" ? Buffer.from(v, "base64").toString("hex") : hexIds(v);
        return r;
    }
    return o;
}

function toObject(type, msg) {
    return hexIds(type.toObject(msg, { longs: String, bytes: String, enums: Number, defaults: false }));
}

function jsonCheck(file) {
    const lines = fs.readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0);
    const out = {
        lines: lines.length, traces: 0, logs: 0, spans: 0, log_records: 0, metrics: 0, data_points: 0, objects: [],
    };
    for (const line of lines) {
        const obj = JSON.parse(line);
        const signal = obj.resourceSpans ? "traces" : obj.resourceLogs ? "logs" : obj.resourceMetrics ? "metrics" : null;
        if (!signal) throw new Error("no resourceSpans, resourceLogs or resourceMetrics: " + line.slice(0, 200));
        // OTLP/JSON ids are hex; protobufjs' fromObject wants base64 for bytes.
        const conv = JSON.parse(line, function (k, v) {
            return ID_FIELDS.has(k) && typeof v === "string" ? Buffer.from(v, "hex").toString("base64") : v;
        });
        const msg = Req[signal].fromObject(conv);
        const err = Req[signal].verify(msg);
        if (err) throw new Error("does not verify: " + err);
        const back = toObject(Req[signal], Req[signal].decode(Req[signal].encode(msg).finish()));
        out[signal]++;
        if (signal === "traces")
            for (const rs of back.resourceSpans || [])
                for (const ss of rs.scopeSpans || []) out.spans += (ss.spans || []).length;
        else if (signal === "logs")
            for (const rl of back.resourceLogs || [])
                for (const sl of rl.scopeLogs || []) out.log_records += (sl.logRecords || []).length;
        else countMetrics(back, out);
        out.objects.push({ signal, decoded: back });
    }
    process.stdout.write(JSON.stringify(out) + "\n");
}

function serve(port, delayMs) {
    let script = { traces: [], logs: [], metrics: [] };
    let requests = [];

    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
            const raw = Buffer.concat(chunks);
            const url = req.url.split("?")[0];
            const json = (status, o) => {
                res.writeHead(status, { "Content-Type": "application/json" });
                res.end(JSON.stringify(o) + "\n");
            };
            if (url === "/control/script" && req.method === "POST") {
                const s = JSON.parse(raw.toString() || "{}");
                script = { traces: s.traces || [], logs: s.logs || [], metrics: s.metrics || [] };
                return json(200, { ok: true });
            }
            if (url === "/control/requests") return json(200, requests);
            if (url === "/control/summary") {
                const out = { requests: requests.length, spans: 0, log_records: 0, metrics: 0, data_points: 0 };
                for (const r of requests) {
                    if (r.status !== 200 || !r.body) continue;
                    for (const rs of r.body.resourceSpans || [])
                        for (const ss of rs.scopeSpans || []) out.spans += (ss.spans || []).length;
                    for (const rl of r.body.resourceLogs || [])
                        for (const sl of rl.scopeLogs || []) out.log_records += (sl.logRecords || []).length;
                    countMetrics(r.body, out);
                }
                return json(200, out);
            }
            if (url === "/control/reset" && req.method === "POST") {
                requests = [];
                script = { traces: [], logs: [], metrics: [] };
                return json(200, { ok: true });
            }
            const signal = PATHS[url] || null;
            if (!signal || req.method !== "POST") return json(404, { error: "not found" });

            const rec = {
                signal,
                time_ms: Date.now(),
                encoding: req.headers["content-encoding"] || "identity",
                content_type: req.headers["content-type"],
                authorization: req.headers["authorization"] || null,
                wire_bytes: raw.length,
            };
            let body = null;
            try {
                const data = rec.encoding === "gzip" ? zlib.gunzipSync(raw) : raw;
                rec.bytes = data.length;
                body = toObject(Req[signal], Req[signal].decode(data));
            } catch (e) {
                rec.error = String(e);
            }
            rec.body = body;
            const answer = script[signal].length > 0 ? script[signal].shift() : { status: 200 };
            rec.status = body === null ? 400 : answer.status;
            rec.rejected = answer.rejected || 0;
            requests.push(rec);
            if (body === null) return json(400, { error: rec.error });

            const headers = { "Content-Type": "application/x-protobuf" };
            if (answer.retry_after !== undefined) headers["Retry-After"] = String(answer.retry_after);
            let payload = Buffer.alloc(0);
            if (answer.status === 200 && answer.rejected) {
                const key = { traces: "rejectedSpans", logs: "rejectedLogRecords", metrics: "rejectedDataPoints" }[signal];
                const ps = { [key]: answer.rejected, errorMessage: "scripted rejection" };
                payload = Buffer.from(Resp[signal].encode(Resp[signal].fromObject({ partialSuccess: ps })).finish());
            } else if (answer.status === 200) {
                payload = Buffer.from(Resp[signal].encode(Resp[signal].fromObject({})).finish());
            }
            const send = () => {
                res.writeHead(answer.status, headers);
                res.end(payload);
            };
            if (delayMs > 0) setTimeout(send, delayMs);
            else send();
        });
    });
    server.keepAliveTimeout = 30000;
    server.listen(port, "127.0.0.1", () => process.stdout.write("listening " + port + "\n"));
    process.on("SIGTERM", () => process.exit(0));
}

if (process.argv[2] === "--json-check") jsonCheck(process.argv[3]);
else {
    const i = process.argv.indexOf("--delay-ms");
    serve(parseInt(process.argv[2], 10), i > 0 ? parseInt(process.argv[i + 1], 10) : 0);
}
