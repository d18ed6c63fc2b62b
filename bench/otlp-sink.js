#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// A minimal OTLP/HTTP sink for bench/otlp-export (node's builtin modules only, no npm packages).
//
//   node otlp-sink.js [--port N] [--no-decode]
//
// Listens on 127.0.0.1:N (default 0: any free port) and prints one JSON line {"port": N} on stdout once it
// listens. Every POST is answered 200 with an empty application/x-protobuf body (an empty body carries no
// partial_success: everything accepted). Per signal (the last path component: traces, logs, else other) it
// counts requests, body bytes as received (the wire size: gzipped when Content-Encoding says so) and, unless
// --no-decode, the body bytes after gunzip and the items inside: it walks the protobuf wire format just deep
// enough to count ExportTraceServiceRequest.resource_spans[].scope_spans[].spans[] and
// ExportLogsServiceRequest.resource_logs[].scope_logs[].log_records[] (field 1, then 2, then 2 in both), so
// the bench can check tetherd's own counters against what arrived.
//
// GET /stats answers the counts as JSON; on SIGTERM (or SIGINT) they are printed to stdout and the sink exits.
"use strict";

const http = require("http");
const zlib = require("zlib");

let port = 0;
let decode = true;
for (let i = 2; i < process.argv.length; i++) {
    if (process.argv[i] === "--port") port = parseInt(process.argv[++i], 10);
    else if (process.argv[i] === "--no-decode") decode = false;
    else {
        process.stderr.write("usage: otlp-sink.js [--port N] [--no-decode]\n");
        process.exit(2);
    }
}

const started = process.hrtime.bigint();
const stats = { requests: {}, wire_bytes: {}, raw_bytes: {}, items: {}, gzip_requests: 0, decode_errors: 0 };

function add(what, signal, n) {
    what[signal] = (what[signal] || 0) + n;
}

// Reads a varint at buf[pos]; returns [value, next pos]. Values fit a double here (lengths, field keys).
function varint(buf, pos) {
    let v = 0, mul = 1;
    for (;;) {
        if (pos >= buf.length) throw new Error("truncated varint");
        const b = buf[pos++];
        v += (b & 0x7f) * mul;
        if (b < 0x80) return [v, pos];
        mul *= 128;
        if (mul > 2 ** 63) throw new Error("varint too long");
    }
}

// Counts the length-delimited fields reached by following `path` (field numbers, one per nesting level) in
// the protobuf message buf[start, end).
function countPath(buf, start, end, path) {
    let n = 0, pos = start;
    while (pos < end) {
        let key;
        [key, pos] = varint(buf, pos);
        const field = Math.floor(key / 8), wire = key & 7;
        if (wire === 0) {
            [, pos] = varint(buf, pos);
        } else if (wire === 1) {
            pos += 8;
        } else if (wire === 5) {
            pos += 4;
        } else if (wire === 2) {
            let len;
            [len, pos] = varint(buf, pos);
            if (pos + len > end) throw new Error("truncated field");
            if (field === path[0]) n += path.length === 1 ? 1 : countPath(buf, pos, pos + len, path.slice(1));
            pos += len;
        } else {
            throw new Error("unsupported wire type " + wire);
        }
    }
    if (pos !== end) throw new Error("field overruns its message");
    return n;
}

function onPost(req, body) {
    const signal = req.url.split("?")[0].split("/").filter((s) => s).pop() || "other";
    const sig = signal === "traces" || signal === "logs" ? signal : "other";
    add(stats.requests, sig, 1);
    add(stats.wire_bytes, sig, body.length);
    const gzip = (req.headers["content-encoding"] || "").toLowerCase() === "gzip";
    if (gzip) stats.gzip_requests++;
    if (!decode || sig === "other") return;
    try {
        const raw = gzip ? zlib.gunzipSync(body) : body;
        add(stats.raw_bytes, sig, raw.length);
        add(stats.items, sig === "traces" ? "spans" : "log_records", countPath(raw, 0, raw.length, [1, 2, 2]));
    } catch (e) {
        stats.decode_errors++;
    }
}

function snapshot() {
    const cpu = process.cpuUsage();
    return Object.assign({}, stats, {
        cpu_s: (cpu.user + cpu.system) / 1e6,
        uptime_s: Number(process.hrtime.bigint() - started) / 1e9,
    });
}

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
        if (req.method === "GET" && req.url === "/stats") {
            const out = JSON.stringify(snapshot());
            res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(out) });
            res.end(out);
            return;
        }
        if (req.method !== "POST") {
            res.writeHead(405, { "Content-Length": 0 });
            res.end();
            return;
        }
        onPost(req, Buffer.concat(chunks));
        res.writeHead(200, { "Content-Type": "application/x-protobuf", "Content-Length": 0 });
        res.end();
    });
});
server.keepAliveTimeout = 60000;

function shutdown() {
    process.stdout.write(JSON.stringify(snapshot()) + "\n", () => process.exit(0));
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

server.listen(port, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
