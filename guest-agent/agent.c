/* SPDX-License-Identifier: MIT */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-log.h"
#include "config.h"
#include "fileio.h"
#include "flow.h"
#include "format.h"
#include "fs-util.h"
#include "init.h"
#include "kmsg.h"
#include "linebuf.h"
#include "macro.h"
#include "notify.h"
#include "pidns.h"
#include "probe.h"
#include "record.h"
#include "replay.h"
#include "sample.h"
#include "strv.h"
#include "time-util.h"
#include "traceparent.h"
#include "transport.h"
#include "workload.h"

extern char **environ;

#define OUTPUT_IDLE_FLUSH_NS (50 * NSEC_PER_MSEC)
/* The OOM killer sends SIGKILL before it prints "Killed process": give the line a moment to appear. */
#define OOM_GRACE_NS (50 * NSEC_PER_MSEC)
/* The final flush never keeps a machine from powering off longer than this (or flush_timeout_ms if larger). */
#define FINISH_MAX_NS (30 * NSEC_PER_SEC)
#define READ_BUFFER_SIZE (NOTIFY_DATAGRAM_MAX + 1)
#define OUTPUT_READ_BUDGET (64u * 1024u)
/* After the workload's death: a grandchild holding the pipe could write forever. */
#define OUTPUT_FINAL_READ_BUDGET (1024u * 1024u)
/* The most one read adds to the replay buffer: what it read, plus the partial line held from before, in at most
 * three records (two full chunks and the rest), each with its envelope and bookkeeping. Flow control starts a
 * read only while this much fits without evicting output the host does not have. */
#define OUTPUT_READ_RESERVE (READ_BUFFER_SIZE + RECORD_MAX_LOG_DATA + 3u * (REPLAY_ENTRY_OVERHEAD + 128u))
#define KMSG_RECORDS_PER_WAKEUP 256u
#define NOTIFY_DATAGRAMS_PER_WAKEUP 64u
/* After the workload's death: what its notify socket holds, up to Linux's default datagram queue length. */
#define NOTIFY_FINAL_DATAGRAMS 512u
#define MAX_USER_MILESTONES 1024u

typedef struct Agent Agent;

typedef struct OutputStream {
        Agent *agent;
        int fd;
        LineBuf lines;
        Tether__LogStream stream;
        uint64_t idle_deadline;
        size_t drain_left; /* PHASE_DRAINING: what is still read at most */
        bool drained;
} OutputStream;

/* What stopped output_read(). */
typedef enum OutputRead {
        OUTPUT_EMPTY,  /* the pipe has nothing more now */
        OUTPUT_CLOSED, /* end of file (or an error): the stream is closed */
        OUTPUT_BUDGET, /* read as much as allowed */
        OUTPUT_PAUSED, /* flow control: the buffer cannot take more until the host took some */
} OutputRead;

typedef enum AgentPhase {
        PHASE_RUNNING,
        PHASE_DRAINING,   /* workload reaped: reading what its pipes still hold, waiting for the host if need be */
        PHASE_EXIT_GRACE, /* workload SIGKILLed: waiting briefly for the OOM line */
        PHASE_FINISHING,  /* final records queued: flushing until acked or the flush timeout */
} AgentPhase;

struct Agent {
        const AgentConfig *config;
        const AgentPluginOps *plugin_ops;
        void *plugin;
        AgentHost host;
        Replay *replay;
        Transport *transport;
        Prober *prober;
        int signal_fd;
        int notify_fd;
        int console_fd;
        KmsgReader kmsg;
        LineBuf kmsg_lines;
        OutputStream out[2];
        char *read_buf;

        Flow flow;
        bool output_paused;        /* the workload's pipes are not read (flow control) */
        bool drain_hurry;          /* SIGTERM/SIGINT while draining: stop waiting for the host */
        uint64_t seen_progress_ns; /* TransportStats as last handed to the flow control */
        uint64_t seen_connects;

        pid_t workload_pid;
        uint64_t start_monotonic; /* kmsg stamps with CLOCK_MONOTONIC */
        uint64_t workload_start_monotonic;
        bool workload_alive;
        int workload_exec_errno;
        int workload_status;
        bool workload_oom;

        bool ready;
        char *last_status;
        char *traceparent;

        AgentPhase phase;
        uint64_t grace_deadline;
        uint64_t finish_deadline;      /* flush_timeout_ms after the last ack that freed records */
        uint64_t kill_deadline;        /* stop_timeout_ms after SIGTERM/SIGINT went to the workload, else MAX */
        uint64_t finish_hard_deadline; /* however fast acks arrive, the machine powers off by then */
        uint64_t finish_records;       /* records held at the last ack */
        int exit_code;

        uint64_t sample_deadline;  /* next resource sample; UINT64_MAX when sampling is off */
        uint64_t sample_connects;  /* TransportStats.connects at the last sample: a new connection samples at once */
        char workload_cgroup[256]; /* the workload's cgroup v2 path, "" when unknown */
        bool container;            /* not the initial pid namespace: the cgroup tree is the host's */
        ResourceSampleData sample;

        uint64_t user_milestones;
        uint64_t dropped_user_milestones;
        uint64_t record_errors;
        uint64_t console_drops;
};

static uint64_t now_boottime(void) {
        return now_ns(CLOCK_BOOTTIME);
}

static void note_record_error(Agent *a, int r, const char *what) {
        if (r >= 0)
                return;
        /* Only out of memory gets here; one line is enough, the count goes into the shutdown milestone. */
        if (a->record_errors++ == 0)
                log_warning_errno(r, "Failed to record %s: %m", what);
}

static void milestone(Agent *a, const char *name, uint64_t t, const char *const *attrs) {
        note_record_error(a, record_milestone(a->replay, name, t, attrs), name);
}

/* t: when it became ready (CLOCK_BOOTTIME ns), usually now. */
static void set_ready(Agent *a, const char *source, const char *detail, uint64_t t) {
        if (a->ready)
                return; /* only the first Ready of a boot counts */
        a->ready = true;

        note_record_error(a, record_ready(a->replay, source, detail ?: "", t), "Ready");
        milestone(a, "ready", t, (const char *const[]) { "source", source, NULL });
        if (a->prober)
                prober_stop(a->prober);
        log_info("ready (%s%s%s)", source, detail && *detail ? ": " : "", detail ?: "");
}

static int emit_output(const char *data, size_t len, void *userdata) {
        OutputStream *o = userdata;
        Agent *a = o->agent;

        note_record_error(
                a, record_log(a->replay, o->stream, "workload", now_boottime(), data, len), "workload output");
        if (a->console_fd >= 0) {
                ssize_t k = write(a->console_fd, data, len);
                if (k < 0 || (size_t) k != len)
                        a->console_drops++; /* never block on a slow console */
        }
        return 0;
}

static int emit_kmsg(const char *data, size_t len, void *userdata) {
        Agent *a = userdata;
        note_record_error(
                a,
                record_log(a->replay, TETHER__LOG_STREAM__LOG_STREAM_KMSG, "kmsg", now_boottime(), data, len),
                "kernel messages");
        return 0;
}

static void output_close(OutputStream *o) {
        (void) linebuf_flush_all(&o->lines, emit_output, o);
        o->fd = safe_close(o->fd);
        o->idle_deadline = UINT64_MAX;
}

static bool output_open(const Agent *a) {
        return a->out[0].fd >= 0 || a->out[1].fd >= 0;
}

/* Whether the workload's output must wait for the host now (log_policy=block, flow.h). This is also where the
 * flow control learns of the host's progress, and where the agent says when it stops waiting for the host. */
static bool output_blocked(Agent *a, uint64_t now) {
        FlowState before = a->flow.state;
        TransportStats ts;

        transport_get_stats(a->transport, &ts);
        if (ts.connects != a->seen_connects) {
                a->seen_connects = ts.connects;
                flow_welcome(&a->flow, now);
        }
        if (ts.progress_ns != a->seen_progress_ns) {
                a->seen_progress_ns = ts.progress_ns;
                flow_progress(&a->flow, ts.progress_ns);
        }
        if (a->drain_hurry)
                return false;

        uint64_t fill = flow_fill(
                replay_bytes(a->replay), replay_sent_log_bytes(a->replay), transport_is_established(a->transport));
        bool paused = flow_paused(&a->flow, fill, now);
        if (a->flow.state == FLOW_STALLED && before != FLOW_STALLED)
                log_warning(
                        "tetherd took no output for %u ms; dropping the oldest workload output instead of "
                        "waiting",
                        a->config->log_stall_timeout_ms);
        else if (before == FLOW_STALLED && a->flow.state != FLOW_STALLED)
                log_info(
                        "tetherd is taking output again; the workload's output waits for it again when the buffer is full");
        return paused;
}

/* Whether the workload's output must wait, stopping or resuming the idle flush of partial lines accordingly: a
 * paused stream's partial line waits for the rest of it (the workload may be blocked writing it), and once reading
 * resumes it is idle from then on, not from before the pause. */
static bool output_update_pause(Agent *a, uint64_t now) {
        bool paused = output_blocked(a, now);

        if (paused == a->output_paused)
                return paused;
        a->output_paused = paused;
        for (size_t i = 0; i < ELEMENTSOF(a->out); i++) {
                OutputStream *o = &a->out[i];
                o->idle_deadline = !paused && linebuf_has_partial(&o->lines) ? now + OUTPUT_IDLE_FLUSH_NS : UINT64_MAX;
        }
        return paused;
}

static void host_set_ready(AgentHost *h, const char *source, const char *detail, uint64_t boottime_ns) {
        set_ready(h->agent, source, detail, boottime_ns);
}

static void host_record_error(AgentHost *h, int r, const char *what) {
        note_record_error(h->agent, r, what);
}

/* Reads what the pipe holds (up to *budget bytes, which it decreases) while flow control allows, emits complete
 * lines, and arms the idle flush for a partial last line. */
static OutputRead output_read(Agent *a, OutputStream *o, size_t *budget, uint64_t now) {
        OutputRead result = OUTPUT_BUDGET;

        while (*budget > 0) {
                if (o->fd < 0)
                        return OUTPUT_CLOSED;
                if (output_update_pause(a, now)) {
                        result = OUTPUT_PAUSED;
                        break;
                }
                ssize_t k = RETRY_ON_EINTR(read(o->fd, a->read_buf, MIN((size_t) READ_BUFFER_SIZE, *budget)));
                if (k < 0) {
                        if (errno == EAGAIN) {
                                result = OUTPUT_EMPTY;
                                break;
                        }
                        log_debug_errno(errno, "reading the workload's output failed: %m");
                        output_close(o);
                        return OUTPUT_CLOSED;
                }
                if (k == 0) {
                        output_close(o);
                        return OUTPUT_CLOSED;
                }
                (void) linebuf_feed(&o->lines, a->read_buf, (size_t) k, emit_output, o);
                *budget -= (size_t) k;
        }
        (void) linebuf_flush_lines(&o->lines, emit_output, o);
        o->idle_deadline = !a->output_paused && linebuf_has_partial(&o->lines) ? now + OUTPUT_IDLE_FLUSH_NS :
                                                                                 UINT64_MAX;
        return result;
}

static void kmsg_read(Agent *a, uint64_t now) {
        char line[KMSG_RECORD_MAX + 64];
        /* kmsg stamps records with the monotonic clock; records are CLOCK_BOOTTIME. */
        uint64_t boot_offset = now - MIN(now, now_ns(CLOCK_MONOTONIC));

        for (unsigned i = 0; i < KMSG_RECORDS_PER_WAKEUP && a->kmsg.fd >= 0; i++) {
                KmsgRecord rec;
                uint64_t lost;
                int r = kmsg_reader_read(&a->kmsg, a->read_buf, KMSG_RECORD_MAX, &rec, &lost);
                if (r == 0)
                        break;
                if (r < 0) {
                        log_warning_errno(r, "Failed to read /dev/kmsg: %m; no longer following kernel messages");
                        kmsg_reader_close(&a->kmsg);
                        break;
                }

                if (lost > 0) {
                        int n = format(line, sizeof(line), "tether-agent: %" PRIu64 " kernel log records lost\n", lost);
                        (void) linebuf_feed(&a->kmsg_lines, line, (size_t) n, emit_kmsg, a);
                }

                int n = format(
                        line,
                        sizeof(line),
                        "[%5" PRIu64 ".%06" PRIu64 "] ",
                        rec.usec / USEC_PER_SEC,
                        rec.usec % USEC_PER_SEC);
                size_t len = (size_t) n +
                        kmsg_unescape(rec.message, rec.message_len, line + n, sizeof(line) - (size_t) n - 1);
                line[len++] = '\n';
                (void) linebuf_feed(&a->kmsg_lines, line, len, emit_kmsg, a);

                pid_t pid;
                char comm[KMSG_COMM_MAX];
                if (kmsg_parse_oom(rec.message, rec.message_len, &pid, comm)) {
                        char pid_str[16];
                        format(pid_str, sizeof(pid_str), "%d", (int) pid);
                        uint64_t t = MIN(rec.usec * NSEC_PER_USEC + boot_offset, now);
                        (void) linebuf_flush_all(&a->kmsg_lines, emit_kmsg, a);
                        milestone(a, "oom.kill", t, (const char *const[]) { "pid", pid_str, "comm", comm, NULL });
                        /* Older lines (replayed history) may name an earlier process with a reused pid. */
                        if (a->workload_pid > 0 && pid == a->workload_pid &&
                            rec.usec * NSEC_PER_USEC >= a->workload_start_monotonic)
                                a->workload_oom = true;
                        bool recent = rec.usec * NSEC_PER_USEC >= a->start_monotonic;
                        log_emit(
                                recent ? LOG_WARNING : LOG_DEBUG,
                                0,
                                NULL,
                                "the OOM killer killed process %d (%s)",
                                (int) pid,
                                comm);
                }
        }
        (void) linebuf_flush_all(&a->kmsg_lines, emit_kmsg, a);
}

static void handle_notify_message(Agent *a, const NotifyMessage *m, uint64_t now) {
        if (m->status) {
                char *s = strdup(m->status);
                if (s) {
                        free(a->last_status);
                        a->last_status = s;
                }
        }

        if (m->milestone) {
                if (a->user_milestones >= MAX_USER_MILESTONES) {
                        if (a->dropped_user_milestones++ == 0)
                                log_warning(
                                        "more than %u milestones from the guest; ignoring further ones",
                                        MAX_USER_MILESTONES);
                } else {
                        const char *attrs[2 * NOTIFY_MAX_ATTRS + 1];
                        size_t n = 0;
                        for (size_t i = 0; i < m->n_attrs; i++) {
                                attrs[n++] = m->attr_keys[i];
                                attrs[n++] = m->attr_values[i];
                        }
                        attrs[n] = NULL;
                        a->user_milestones++;
                        milestone(a, m->milestone, now, attrs);
                }
        }

        if (m->ready)
                set_ready(a, m->from_cli ? "notify" : "sd_notify", m->status ?: a->last_status, now);
}

static void notify_read(Agent *a, unsigned budget, uint64_t now) {
        for (unsigned i = 0; i < budget && a->notify_fd >= 0; i++) {
                int n = notify_socket_receive(a->notify_fd, a->read_buf, READ_BUFFER_SIZE);
                if (n == -EAGAIN)
                        return;
                if (n == -EMSGSIZE) {
                        log_warning("ignoring a notify message larger than %u bytes", NOTIFY_DATAGRAM_MAX);
                        continue;
                }
                if (n < 0) {
                        log_warning_errno(n, "Failed to receive on the notify socket: %m");
                        return;
                }

                NotifyMessage m;
                if (notify_message_parse(a->read_buf, (size_t) n, &m) < 0) {
                        log_warning("out of memory parsing a notify message");
                        continue;
                }
                handle_notify_message(a, &m, now);
                notify_message_done(&m);
        }
}

static void begin_finish(Agent *a, uint64_t now) {
        if (a->phase == PHASE_FINISHING)
                return;

        ReplayStats rs;
        replay_get_stats(a->replay, &rs);
        char dropped[24], lost[24], errors[24];
        format(dropped, sizeof(dropped), "%" PRIu64, rs.dropped_records);
        format(lost, sizeof(lost), "%" PRIu64, a->kmsg.lost);
        format(errors, sizeof(errors), "%" PRIu64, a->record_errors);
        char pauses[24], stalls[24];
        format(pauses, sizeof(pauses), "%" PRIu64, a->flow.pauses);
        format(stalls, sizeof(stalls), "%" PRIu64, a->flow.stalls);
        milestone(
                a,
                "shutdown",
                now,
                (const char *const[]) { "logs_dropped",
                                        dropped,
                                        "kmsg_lost",
                                        lost,
                                        "record_errors",
                                        errors,
                                        "log_pauses",
                                        pauses,
                                        "log_stalls",
                                        stalls,
                                        NULL });

        if (a->prober)
                prober_stop(a->prober);
        a->phase = PHASE_FINISHING;
        a->finish_deadline = now + (uint64_t) a->config->flush_timeout_ms * NSEC_PER_MSEC;
        a->finish_hard_deadline = MAX(a->finish_deadline, now + FINISH_MAX_NS);
        a->finish_records = UINT64_MAX;
}

/* Whether the final flush is over: everything acked, or no ack freed anything for flush_timeout_ms (tetherd is
 * gone or stuck), or FINISH_MAX_NS passed. A slow but live tetherd keeps the machine up while it catches up. */
static bool finish_done(Agent *a, uint64_t now) {
        ReplayStats rs;

        if (replay_is_empty(a->replay))
                return true;
        replay_get_stats(a->replay, &rs);
        if (rs.records < a->finish_records) {
                if (a->finish_records != UINT64_MAX)
                        a->finish_deadline = MIN(
                                now + (uint64_t) a->config->flush_timeout_ms * NSEC_PER_MSEC, a->finish_hard_deadline);
                a->finish_records = rs.records;
        }
        return now >= a->finish_deadline;
}

static const char *signal_name(int sig) {
        switch (sig) {
        case SIGHUP:
                return "SIGHUP";
        case SIGINT:
                return "SIGINT";
        case SIGQUIT:
                return "SIGQUIT";
        case SIGILL:
                return "SIGILL";
        case SIGABRT:
                return "SIGABRT";
        case SIGBUS:
                return "SIGBUS";
        case SIGFPE:
                return "SIGFPE";
        case SIGKILL:
                return "SIGKILL";
        case SIGSEGV:
                return "SIGSEGV";
        case SIGPIPE:
                return "SIGPIPE";
        case SIGALRM:
                return "SIGALRM";
        case SIGTERM:
                return "SIGTERM";
        case SIGUSR1:
                return "SIGUSR1";
        case SIGUSR2:
                return "SIGUSR2";
        default:
                return "signal";
        }
}

static void finalize_exit(Agent *a, uint64_t now) {
        char reason[160];
        int code, sig = 0;

        if (a->workload_exec_errno != 0) {
                code = exec_errno_to_exit_code(a->workload_exec_errno);
                format(reason, sizeof(reason), "exec failed: %s", strerror(a->workload_exec_errno));
        } else {
                code = wait_status_to_exit_code(a->workload_status, &sig);
                if (a->workload_oom)
                        format(reason, sizeof(reason), "killed by the OOM killer");
                else if (sig)
                        format(reason, sizeof(reason), "killed by %s (%d)", signal_name(sig), sig);
                else
                        format(reason, sizeof(reason), "exited with status %d", code);
        }
        a->exit_code = code;

        char code_str[16], sig_str[16];
        format(code_str, sizeof(code_str), "%d", code);
        format(sig_str, sizeof(sig_str), "%d", sig);
        milestone(
                a,
                "workload.exit",
                now,
                (const char *const[]) {
                        "code", code_str, "signal", sig_str, "oom_killed", a->workload_oom ? "true" : "false", NULL });
        note_record_error(a, record_exit(a->replay, code, sig, a->workload_oom, now, reason), "Exit");
        log_info("workload %s (exit code %d)", reason, code);
        begin_finish(a, now);
}

/* PHASE_DRAINING, once per loop iteration: everything the workload wrote comes before its Exit, so what its pipes
 * hold is read first. A grandchild may hold the pipes open: take what is there (up to OUTPUT_FINAL_READ_BUDGET
 * each), no more. Flow control applies as while the workload ran: with a full buffer this waits for the host to
 * take output, for as long as the host makes progress and at most the stall timeout without, so that the last
 * lines are not the ones dropped. */
static void drain_step(Agent *a, uint64_t now) {
        bool done = true;

        for (size_t i = 0; i < ELEMENTSOF(a->out); i++) {
                OutputStream *o = &a->out[i];
                if (o->drained)
                        continue;
                if (output_read(a, o, &o->drain_left, now) == OUTPUT_PAUSED)
                        done = false;
                else
                        o->drained = true;
        }
        if (!done)
                return;

        for (size_t i = 0; i < ELEMENTSOF(a->out); i++) {
                OutputStream *o = &a->out[i];
                (void) linebuf_flush_all(&o->lines, emit_output, o);
                o->idle_deadline = UINT64_MAX;
        }

        if (a->kmsg.fd >= 0)
                kmsg_read(a, now);
        now = now_boottime(); /* the Exit comes after the output just drained, in time as in seq */
        if (WIFSIGNALED(a->workload_status) && WTERMSIG(a->workload_status) == SIGKILL && a->kmsg.fd >= 0 &&
            !a->workload_oom && a->workload_exec_errno == 0) {
                a->phase = PHASE_EXIT_GRACE;
                a->grace_deadline = now + OOM_GRACE_NS;
                return;
        }
        finalize_exit(a, now);
}

/* One resource sample now, if a tetherd takes them. */
static void sample_now(Agent *a, uint64_t now) {
        if (a->config->sample_interval_ms > 0 && transport_wants_samples(a->transport) &&
            sample_collect("/proc", "/sys", a->workload_cgroup[0] ? a->workload_cgroup : NULL, now, &a->sample) == 0)
                (void) transport_send_sample(a->transport, &a->sample.pb);
}

static void workload_exited(Agent *a, int status, uint64_t now) {
        a->workload_alive = false;
        a->workload_status = status;
        /* The final counters (the cgroup's OOM kills, its peak memory) before the Exit: the machine may power off
         * before the next interval. */
        sample_now(a, now);

        /* A READY=1 (or milestone) sent just before the exit may still be queued when SIGCHLD is handled: it
         * happened before the exit, so it is recorded before it. */
        notify_read(a, NOTIFY_FINAL_DATAGRAMS, now);

        for (size_t i = 0; i < ELEMENTSOF(a->out); i++) {
                a->out[i].drain_left = OUTPUT_FINAL_READ_BUDGET;
                a->out[i].drained = false;
        }
        a->phase = PHASE_DRAINING;
        drain_step(a, now);
}

static void probe_satisfied(Agent *a, size_t index) {
        const ProbeSpec *s = &a->config->probes[index];
        set_ready(a, probe_kind_to_source(s->kind), s->spec, now_boottime());
}

static void reap_children(Agent *a, uint64_t now) {
        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                if (pid <= 0)
                        return;

                if (a->prober) {
                        size_t i;
                        int r = prober_child_exited(a->prober, pid, status, &i);
                        if (r > 0)
                                probe_satisfied(a, i);
                        if (r >= 0)
                                continue;
                }
                if (pid == a->workload_pid && a->workload_alive)
                        workload_exited(a, status, now);
                /* anything else: an orphan we adopted as subreaper (or PID 1); reaping it is all there is */
        }
}

/* To the workload's process group (its own, workload.c), falling back to the process alone if the group is
 * gone already. */
static void workload_signal(Agent *a, int sig) {
        if (kill(-a->workload_pid, sig) < 0)
                (void) kill(a->workload_pid, sig);
}

/* The workload did not stop within stop_timeout_ms of SIGTERM/SIGINT: SIGKILL its group and, as PID 1, every
 * other process too (the agent is the only one left to shut the machine down). */
static void workload_kill(Agent *a) {
        log_warning(
                "the workload did not stop within %" PRIu32 " ms of the signal: sending SIGKILL to %s",
                a->config->stop_timeout_ms,
                getpid() == 1 ? "every process" : "its processes");
        workload_signal(a, SIGKILL);
        if (getpid() == 1)
                (void) kill(-1, SIGKILL);
}

static void signal_read(Agent *a, uint64_t now) {
        struct signalfd_siginfo si;

        while (read(a->signal_fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
                int sig = (int) si.ssi_signo;
                if (sig == SIGCHLD) {
                        reap_children(a, now);
                        continue;
                }

                if (a->workload_alive) {
                        log_info("forwarding %s to the workload's processes", signal_name(sig));
                        workload_signal(a, sig);
                        if ((sig == SIGTERM || sig == SIGINT) && a->config->stop_timeout_ms > 0 &&
                            a->kill_deadline == UINT64_MAX)
                                a->kill_deadline = now + (uint64_t) a->config->stop_timeout_ms * NSEC_PER_MSEC;
                } else if (sig != SIGTERM && sig != SIGINT) {
                        continue; /* only forwarded; nothing to forward to */
                } else if (a->phase == PHASE_FINISHING) {
                        a->finish_deadline = a->finish_hard_deadline = now; /* asked twice: stop waiting */
                } else if (a->phase == PHASE_DRAINING) {
                        log_info("%s received, no longer waiting for tetherd to take the output", signal_name(sig));
                        a->drain_hurry = true; /* what the pipes hold is read now, dropping if it must */
                } else if (a->phase == PHASE_RUNNING) {
                        log_info("%s received, shutting down", signal_name(sig));
                        begin_finish(a, now);
                }
        }
        /* SIGCHLD may be coalesced with one already pending: reaping again is cheap and never misses one. */
        reap_children(a, now);
}

static void on_welcome(const char *traceparent, const char *journal_cursor, uint32_t version, void *userdata) {
        Agent *a = userdata;

        if (a->plugin && a->plugin_ops->welcome)
                a->plugin_ops->welcome(a->plugin, version, journal_cursor);
        if (!traceparent)
                return;
        if (a->traceparent && strcmp(a->traceparent, traceparent) == 0)
                return;
        char *copy = strdup(traceparent);
        if (!copy)
                return;
        free(a->traceparent);
        a->traceparent = copy;

        if (a->config->traceparent_file) {
                char buf[TRACEPARENT_STRLEN + 2];
                int n = format(buf, sizeof(buf), "%s\n", traceparent);
                int r = write_file_atomic(a->config->traceparent_file, buf, (size_t) n, 0644);
                if (r < 0)
                        log_warning_errno(r, "Failed to write %s: %m", a->config->traceparent_file);
        }
}

static int setup_signals(Agent *a) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGUSR1);
        sigaddset(&mask, SIGUSR2);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;

        struct sigaction ign = { .sa_handler = SIG_IGN };
        (void) sigaction(SIGPIPE, &ign, NULL);

        a->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (a->signal_fd < 0)
                return -errno;
        return 0;
}

static char *read_boot_id(void) {
        char *id = NULL;
        if (read_one_line_file("/proc/sys/kernel/random/boot_id", &id) >= 0 && *id)
                return id;
        free(id);

        /* No /proc (or no such file): a random v4 UUID still names this boot uniquely. */
        uint8_t b[16];
        if (random_id(b, sizeof(b)) < 0)
                return NULL;
        b[6] = (uint8_t) ((b[6] & 0x0F) | 0x40);
        b[8] = (uint8_t) ((b[8] & 0x3F) | 0x80);
        char hex[33];
        hex_encode(b, sizeof(b), hex);
        id = malloc(37);
        if (id)
                format(id, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
        return id;
}

static int start_transport(Agent *a, uint64_t now) {
        struct utsname u = {};
        (void) uname(&u);
        _cleanup_free_ char *boot_id = read_boot_id();

        TransportConfig tc = {
                .kind = a->config->transport,
                .unix_path = a->config->unix_path,
                .cid = a->config->cid,
                .port = a->config->port,
                .mode = a->config->mode == AGENT_MODE_INIT ? TETHER__AGENT_MODE__AGENT_MODE_INIT :
                                                             TETHER__AGENT_MODE__AGENT_MODE_SERVICE,
                .boot_id = boot_id ?: "",
                .kernel_release = u.release,
                .hostname = u.nodename,
        };
        int r = transport_new(&tc, a->replay, on_welcome, a, &a->transport);
        if (r < 0)
                return r;
        transport_start(a->transport, now);
        return 0;
}

static void start_workload(Agent *a) {
        char *const *argv = a->config->command;
        _cleanup_free_ char *notify_env = NULL, *tp_env = NULL;
        _cleanup_strv_free_ char **envp = NULL;
        /* Declared before the first goto: the cleanup runs on every way out. */
        _cleanup_close_ int cgroup_procs = -EBADF;
        char *overrides[3] = {};
        size_t n = 0;
        int r;

        if (!(notify_env = format_alloc("NOTIFY_SOCKET=%s", a->config->notify_socket)))
                goto oom;
        overrides[n++] = notify_env;
        /* Only if the host answered already: the workload never waits for the host. */
        if (a->traceparent) {
                if (!(tp_env = format_alloc("TRACEPARENT=%s", a->traceparent)))
                        goto oom;
                overrides[n++] = tp_env;
        }
        if (env_override(environ, overrides, &envp) < 0)
                goto oom;

        /* As a VM's PID 1 the agent gives the workload a cgroup of its own, so that its memory and OOM kills can be
         * reported (never in a container, whose cgroup tree is the host's); elsewhere the workload's cgroup is
         * whatever the agent's is (read below). */
        if (a->config->mode == AGENT_MODE_INIT && !a->container && a->config->sample_interval_ms > 0) {
                cgroup_procs = init_workload_cgroup();
                if (cgroup_procs >= 0)
                        strcpy(a->workload_cgroup, INIT_WORKLOAD_CGROUP);
                else
                        log_debug_errno(cgroup_procs, "no cgroup for the workload: %m");
        }

        Workload w;
        a->workload_start_monotonic = now_ns(CLOCK_MONOTONIC);
        r = workload_spawn(argv, envp, cgroup_procs, &w);
        if (r < 0) {
                log_error_errno(r, "Failed to start the workload %s: %m", argv[0]);
                a->workload_exec_errno = -r;
                a->workload_status = 0;
                finalize_exit(a, now_boottime());
                return;
        }

        a->workload_pid = w.pid;
        a->workload_alive = true;
        if (!a->workload_cgroup[0]) {
                char path[32], text[512];
                format(path, sizeof(path), "/proc/%d/cgroup", (int) w.pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t k = fd >= 0 ? read_full(fd, text, sizeof(text) - 1) : -1;
                safe_close(fd);
                if (k >= 0) {
                        text[k] = '\0';
                        (void) sample_parse_cgroup_path(text, a->workload_cgroup, sizeof(a->workload_cgroup));
                }
        }
        a->workload_exec_errno = w.exec_errno;
        a->out[0].fd = w.stdout_fd;
        a->out[1].fd = w.stderr_fd;

        if (w.exec_errno != 0) {
                log_error_errno(w.exec_errno, "Failed to execute %s: %m", argv[0]);
                return; /* the child exits 127 and is reaped like any workload; its Exit says why */
        }

        char pid_str[16];
        format(pid_str, sizeof(pid_str), "%d", (int) w.pid);
        uint64_t t = now_boottime();
        milestone(a, "workload.exec", t, (const char *const[]) { "pid", pid_str, "command", argv[0], NULL });
        log_debug("started %s as pid %d", argv[0], (int) w.pid);
        if (a->config->ready_exec_started)
                set_ready(a, "exec", argv[0], t);
        return;

oom:
        log_error("out of memory starting the workload");
        a->workload_exec_errno = ENOMEM;
        finalize_exit(a, now_boottime());
}

enum {
        POLL_SIGNAL,
        POLL_TRANSPORT,
        POLL_NOTIFY,
        POLL_KMSG,
        POLL_STDOUT,
        POLL_STDERR,
        POLL_PLUGIN,
        POLL_PROBE,
};

static uint64_t next_deadline(const Agent *a) {
        uint64_t d = transport_next_deadline(a->transport);
        if (a->prober)
                d = MIN(d, prober_next_deadline(a->prober));
        for (size_t i = 0; i < ELEMENTSOF(a->out); i++)
                d = MIN(d, a->out[i].idle_deadline);
        if (a->output_paused && output_open(a))
                d = MIN(d, flow_next_deadline(&a->flow));
        if (a->phase == PHASE_EXIT_GRACE)
                d = MIN(d, a->grace_deadline);
        if (a->phase == PHASE_FINISHING)
                d = MIN(d, a->finish_deadline);
        if (a->workload_alive)
                d = MIN(d, a->kill_deadline);
        d = MIN(d, a->sample_deadline);
        if (a->plugin)
                d = MIN(d, a->plugin_ops->next_deadline(a->plugin));
        return d;
}

static void handle_timers(Agent *a, uint64_t now) {
        transport_handle_timers(a->transport, now);

        if (a->workload_alive && now >= a->kill_deadline) {
                a->kill_deadline = UINT64_MAX;
                workload_kill(a);
        }

        if (a->sample_deadline != UINT64_MAX) {
                TransportStats ts;
                transport_get_stats(a->transport, &ts);
                if (ts.connects != a->sample_connects) {
                        a->sample_connects = ts.connects;
                        a->sample_deadline = now;
                }
        }
        if (now >= a->sample_deadline) {
                /* Nothing to read while no tetherd takes samples: a disconnected agent does not touch /proc. */
                sample_now(a, now);
                a->sample_deadline = now + (uint64_t) a->config->sample_interval_ms * NSEC_PER_MSEC;
        }

        size_t i;
        if (a->prober && prober_handle_timers(a->prober, now, &i) > 0)
                probe_satisfied(a, i);

        for (i = 0; i < ELEMENTSOF(a->out); i++) {
                OutputStream *o = &a->out[i];
                /* A pause disarms the idle flush: a partial line waits for the rest while the workload cannot
                 * write it. */
                if (now >= o->idle_deadline && !output_update_pause(a, now)) {
                        (void) linebuf_flush_all(&o->lines, emit_output, o);
                        o->idle_deadline = UINT64_MAX;
                }
        }

        if (a->phase == PHASE_EXIT_GRACE && now >= a->grace_deadline) {
                notify_read(a, NOTIFY_FINAL_DATAGRAMS, now);
                if (a->kmsg.fd >= 0)
                        kmsg_read(a, now);
                finalize_exit(a, now_boottime());
        }
}

static int run_loop(Agent *a) {
        struct pollfd fds[POLL_PROBE + AGENT_PLUGIN_MAX_FDS + CONFIG_MAX_PROBES];

        for (;;) {
                uint64_t now = now_boottime();
                if (a->phase == PHASE_FINISHING && finish_done(a, now))
                        return 0;

                size_t n = 0;
                int tags[ELEMENTSOF(fds)];
                short events;
                int fd;

#define ADD_FD(tag, f, ev)                                              \
        do {                                                            \
                fds[n] = (struct pollfd) { .fd = (f), .events = (ev) }; \
                tags[n++] = (tag);                                      \
        } while (0)
                ADD_FD(POLL_SIGNAL, a->signal_fd, POLLIN);
                if ((fd = transport_fd(a->transport, &events)) >= 0)
                        ADD_FD(POLL_TRANSPORT, fd, events);
                if (a->notify_fd >= 0)
                        ADD_FD(POLL_NOTIFY, a->notify_fd, POLLIN);
                if (a->kmsg.fd >= 0)
                        ADD_FD(POLL_KMSG, a->kmsg.fd, POLLIN);
                /* Paused pipes are not polled (they stay readable); while draining, drain_step() reads them. Without
                 * pipes there is nothing to pause (kmsg alone never is). */
                bool read_output = output_open(a) && a->phase != PHASE_DRAINING && !output_update_pause(a, now);
                if (read_output && a->out[0].fd >= 0)
                        ADD_FD(POLL_STDOUT, a->out[0].fd, POLLIN);
                if (read_output && a->out[1].fd >= 0)
                        ADD_FD(POLL_STDERR, a->out[1].fd, POLLIN);
#undef ADD_FD
                if (a->plugin) {
                        size_t k = a->plugin_ops->fill_pollfds(a->plugin, fds + n, AGENT_PLUGIN_MAX_FDS);
                        for (size_t i = 0; i < k; i++)
                                tags[n++] = POLL_PLUGIN;
                }
                if (a->prober) {
                        size_t k = prober_fill_pollfds(a->prober, fds + n, ELEMENTSOF(fds) - n);
                        for (size_t i = 0; i < k; i++)
                                tags[n++] = POLL_PROBE;
                }

                uint64_t deadline = next_deadline(a);
                struct timespec ts, *timeout = NULL;
                if (deadline != UINT64_MAX) {
                        uint64_t wait = deadline > now ? deadline - now : 0;
                        ts = (struct timespec) { .tv_sec = (time_t) (wait / NSEC_PER_SEC),
                                                 .tv_nsec = (long) (wait % NSEC_PER_SEC) };
                        timeout = &ts;
                }

                if (ppoll(fds, n, timeout, NULL) < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(errno, "poll() failed: %m");
                }

                now = now_boottime();
                for (size_t i = 0; i < n; i++) {
                        if (!fds[i].revents)
                                continue;
                        switch (tags[i]) {
                        case POLL_SIGNAL:
                                signal_read(a, now);
                                break;
                        case POLL_TRANSPORT:
                                transport_handle_io(a->transport, fds[i].revents, now);
                                break;
                        case POLL_NOTIFY:
                                notify_read(a, NOTIFY_DATAGRAMS_PER_WAKEUP, now);
                                break;
                        case POLL_KMSG:
                                if (a->kmsg.fd >= 0)
                                        kmsg_read(a, now);
                                break;
                        case POLL_STDOUT:
                        case POLL_STDERR: {
                                OutputStream *o = &a->out[tags[i] - POLL_STDOUT];
                                size_t budget = OUTPUT_READ_BUDGET;
                                if (o->fd >= 0 && a->phase != PHASE_DRAINING)
                                        (void) output_read(a, o, &budget, now);
                                break;
                        }
                        case POLL_PLUGIN:
                                break; /* dispatched below, once */
                        case POLL_PROBE:
                                if (a->prober) {
                                        size_t k;
                                        if (prober_handle_pollfd(a->prober, &fds[i], now, &k) > 0)
                                                probe_satisfied(a, k);
                                }
                                break;
                        }
                }

                handle_timers(a, now);
                /* Every iteration: sd-bus and sd-journal keep state beyond their fds, and the host's acks may
                 * have made room for the logs the plugin holds back. Cheap when there is nothing to do. */
                if (a->plugin)
                        a->plugin_ops->dispatch(a->plugin, now);
                if (a->phase == PHASE_DRAINING)
                        drain_step(a, now);
                transport_flush(a->transport, now);
        }
}

static void agent_done(Agent *a) {
        if (a->plugin)
                a->plugin_ops->free(a->plugin);
        transport_free(a->transport);
        prober_free(a->prober);
        replay_free(a->replay);
        safe_close(a->signal_fd);
        safe_close(a->notify_fd);
        safe_close(a->console_fd);
        kmsg_reader_close(&a->kmsg);
        linebuf_done(&a->kmsg_lines);
        for (size_t i = 0; i < ELEMENTSOF(a->out); i++) {
                safe_close(a->out[i].fd);
                linebuf_done(&a->out[i].lines);
        }
        free(a->read_buf);
        free(a->last_status);
        free(a->traceparent);
}

int agent_run(const AgentConfig *config, const AgentTimes *times, const AgentPluginOps *plugin, int *ret_exit_code) {
        Agent a = {
                .config = config,
                .plugin_ops = plugin,
                .signal_fd = -1,
                .notify_fd = -1,
                .console_fd = -1,
                .kmsg = { .fd = -1 },
                .start_monotonic = now_ns(CLOCK_MONOTONIC),
                .kill_deadline = UINT64_MAX,
                .sample_deadline = config->sample_interval_ms > 0 ?
                        now_boottime() + (uint64_t) config->sample_interval_ms * NSEC_PER_MSEC :
                        UINT64_MAX,
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(a.out); i++) {
                a.out[i] = (OutputStream) {
                        .agent = &a,
                        .fd = -1,
                        .stream = i == 0 ? TETHER__LOG_STREAM__LOG_STREAM_STDOUT :
                                           TETHER__LOG_STREAM__LOG_STREAM_STDERR,
                        .idle_deadline = UINT64_MAX,
                };
                linebuf_init(&a.out[i].lines, RECORD_MAX_LOG_DATA);
        }
        linebuf_init(&a.kmsg_lines, RECORD_MAX_LOG_DATA);

        if (!(a.read_buf = malloc(READ_BUFFER_SIZE))) {
                r = log_error_errno(ENOMEM, "Failed to allocate buffers: %m");
                goto finish;
        }
        if ((r = setup_signals(&a)) < 0) {
                log_error_errno(r, "Failed to set up signal handling: %m");
                goto finish;
        }
        /* Orphans of the workload are ours to reap, also when we are not PID 1. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                log_debug_errno(errno, "Failed to become a subreaper: %m");

        if ((r = replay_new(config->replay_bytes, &a.replay)) < 0) {
                log_error_errno(r, "Failed to allocate the replay buffer: %m");
                goto finish;
        }
        flow_init(
                &a.flow,
                config->log_policy == LOG_POLICY_BLOCK,
                config->replay_bytes,
                OUTPUT_READ_RESERVE,
                (uint64_t) config->log_stall_timeout_ms * NSEC_PER_MSEC,
                now_boottime());

        const char *mode = agent_mode_to_string(config->mode);
        /* In a container boottime 0 is the host kernel's start: claiming it would put a bogus hours-long kernel
         * span in the trace. The boot then starts with init.start. */
        bool container = a.container = !pidns_is_initial();
        if (!container)
                milestone(&a, "kernel.start", 0, NULL);
        milestone(
                &a,
                "init.start",
                times->init_start_ns,
                (const char *const[]) {
                        "mode", mode, "agent_version", TETHER_VERSION, container ? "container" : NULL, "1", NULL });
        if (times->mounts_done_ns > 0) {
                char failures[16];
                format(failures, sizeof(failures), "%u", times->mount_failures);
                milestone(
                        &a, "mounts.done", times->mounts_done_ns, (const char *const[]) { "failures", failures, NULL });
        }
        if (times->modules_done_ns > 0) {
                char count[16], failed[16];
                format(count, sizeof(count), "%u", times->modules_count);
                format(failed, sizeof(failed), "%u", times->modules_failed);
                milestone(
                        &a,
                        "modules.loaded",
                        times->modules_done_ns,
                        (const char *const[]) { "count", count, "failed", failed, NULL });
        }

        a.notify_fd = notify_socket_open(config->notify_socket);
        if (a.notify_fd < 0)
                log_warning_errno(
                        a.notify_fd,
                        "Failed to create the notify socket %s: %m; sd_notify() readiness "
                        "will not be seen",
                        config->notify_socket);

        if (config->kmsg) {
                r = kmsg_reader_open(&a.kmsg, NULL);
                if (r < 0) {
                        a.kmsg.fd = -1;
                        log_info_errno(r, "not following kernel messages: /dev/kmsg: %m");
                }
        }

        if (config->console) {
                a.console_fd = open("/dev/console", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                if (a.console_fd < 0)
                        log_warning_errno(errno, "Failed to open /dev/console: %m; not echoing output");
        }

        if ((r = start_transport(&a, now_boottime())) < 0) {
                log_error_errno(r, "Failed to set up the transport: %m");
                goto finish;
        }

        if (plugin) {
                a.host = (AgentHost) {
                        .replay = a.replay,
                        .set_ready = host_set_ready,
                        .record_error = host_record_error,
                        .agent = &a,
                };
                r = plugin->start(config, &a.host, &a.plugin);
                if (r < 0) {
                        log_warning_errno(r, "Failed to start %s: %m", plugin->name);
                        a.plugin = NULL;
                }
        }

        if (config->command)
                start_workload(&a);
        else
                log_info("no workload configured; running until SIGTERM");

        if (config->n_probes > 0 && a.phase == PHASE_RUNNING && a.workload_exec_errno == 0) {
                uint64_t interval = (uint64_t) config->probe_interval_ms * NSEC_PER_MSEC;
                uint64_t timeout = (uint64_t) config->probe_timeout_ms * NSEC_PER_MSEC;
                if ((r = prober_new(config->probes, config->n_probes, interval, timeout, &a.prober)) < 0)
                        log_warning_errno(r, "Failed to set up readiness probes: %m");
                else
                        prober_start(a.prober, now_boottime());
        }

        transport_flush(a.transport, now_boottime());
        r = run_loop(&a);
        if (r >= 0) {
                if (!replay_is_empty(a.replay)) {
                        ReplayStats rs;
                        replay_get_stats(a.replay, &rs);
                        log_warning("exiting with %" PRIu64 " records not acknowledged by tetherd", rs.records);
                }
                *ret_exit_code = a.exit_code;
                r = 0;
        }

finish:
        agent_done(&a);
        return r;
}
