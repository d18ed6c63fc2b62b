/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#include "connection.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "event-util.h"
#include "jsonlog.h"
#include "macro.h"
#include "time-util.h"

/* Stops all I/O now and tells the owner from the turn source, so that no caller up the stack touches a freed
 * connection. */
static void connection_close(Connection *c, CloseReason reason) {
        if (c->closed)
                return;
        c->closed = true;
        c->close_reason = reason;
        (void) sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->ack_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->probe_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->heartbeat_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->turn, SD_EVENT_ONESHOT);
}

/* A guest that spent its budget with more waiting goes on at bulk priority; one that caught up is quiet again. */
static void connection_set_bulk(Connection *c, bool bulk) {
        if (c->bulk == bulk)
                return;
        c->bulk = bulk;
        int64_t priority = bulk ? EVENT_PRIORITY_BULK : SD_EVENT_PRIORITY_NORMAL;
        (void) sd_event_source_set_priority(c->io, priority);
        (void) sd_event_source_set_priority(c->turn, priority);
}

/* Edge-triggered: epoll reports a connection once per arrival of data, not on every epoll_wait() while it waits
 * for its turn. With a thousand guests readable at once, level-triggered epoll re-polled every one of them in each
 * of the loop's iterations (sd-event dispatches one source per iteration): O(n) per iteration, O(n^2) to serve
 * them all, a 0.4 s stall of everyone's Ready at the onset of a flood. The price: a wakeup that stops before
 * EAGAIN (budget spent) must come back by itself, through the turn source (connection_pump()). */
#define CONNECTION_EPOLL_EVENTS (EPOLLIN | EPOLLET)

static void connection_update_io_events(Connection *c) {
        uint32_t events = c->eof ? 0 : CONNECTION_EPOLL_EVENTS;

        if (c->closed)
                return;
        if (out_queue_size(&c->session->out) > 0)
                events |= EPOLLOUT | EPOLLET;
        (void) sd_event_source_set_io_events(c->io, events);
        (void) sd_event_source_set_enabled(c->io, events ? SD_EVENT_ON : SD_EVENT_OFF);
}

/* Returns false when the connection was closed. */
static bool connection_write(Connection *c) {
        int r = out_queue_flush(&c->session->out, c->fd);
        if (r < 0) {
                log_debug_errno(r, "Failed to write to %s: %m", c->peer);
                /* The guest went away: the same as reading EOF, not an I/O problem of tetherd's. */
                connection_close(c, r == -EPIPE || r == -ECONNRESET ? CLOSE_EOF : CLOSE_IO_ERROR);
                return false;
        }
        connection_update_io_events(c);
        return true;
}

static bool connection_check_queue_error(Connection *c, int r) {
        if (r >= 0)
                return true;
        if (r == -ENOBUFS) {
                LogFields f = { .machine_id = c->session->machine->id,
                                .ratelimit = &c->session->machine->log_ratelimit };
                log_emit(
                        LOG_WARNING,
                        0,
                        &f,
                        "Machine %s does not read what tetherd sends, closing %s.",
                        c->session->machine->id,
                        c->peer);
                connection_close(c, CLOSE_OUTPUT_OVERFLOW);
        } else {
                log_error_errno(r, "Failed to queue a message for %s: %m", c->peer);
                connection_close(c, CLOSE_IO_ERROR);
        }
        return false;
}

/* Queues a clock probe. Returns false when the connection was closed. */
static bool connection_queue_probe(Connection *c) {
        int r = session_send_clock_probe(c->session, now_ns(CLOCK_MONOTONIC), now_ns(CLOCK_REALTIME));
        if (!connection_check_queue_error(c, r))
                return false;
        c->probes_sent++;
        return true;
}

static int on_probe_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Connection *c = userdata;

        if (c->closed || !connection_queue_probe(c))
                return 0;
        if (!connection_write(c))
                return 0;

        uint64_t next = CONNECTION_PROBE_INTERVAL_NS;
        if (c->probes_sent < CONNECTION_PROBE_BURST)
                next = CONNECTION_PROBE_BURST_INTERVAL_NS;
        else if (c->session->events_deferred) {
                /* The burst is over: one more interval for its last answers, then the mapping is fixed with what
                 * there is. A guest that answered none yet (a TCG guest busy booting takes more than the burst)
                 * is probed on at burst intervals for up to CONNECTION_PROBE_FIRST_SAMPLE_NS, so that its
                 * mapping gets an error bound; an agent that never answers keeps the Hello's after that. */
                if (c->session->clock_samples == 0 &&
                    (uint64_t) c->probes_sent * CONNECTION_PROBE_BURST_INTERVAL_NS < CONNECTION_PROBE_FIRST_SAMPLE_NS)
                        next = CONNECTION_PROBE_BURST_INTERVAL_NS;
                else if (c->probes_sent > CONNECTION_PROBE_BURST)
                        session_clock_deadline(c->session);
                else
                        next = CONNECTION_PROBE_BURST_INTERVAL_NS * 3;
        }
        (void) sd_event_source_set_time_relative(s, next / NSEC_PER_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static int on_ack_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Connection *c = userdata;

        if (c->closed || !connection_check_queue_error(c, session_request_ack(c->session)))
                return 0;
        (void) connection_write(c);
        return 0;
}

/* A sync completed and the session queued its Ack. */
static void on_session_ack(Session *s, int r, void *userdata) {
        Connection *c = userdata;

        if (c->closed || !connection_check_queue_error(c, r))
                return;
        (void) connection_write(c);
}

static int on_heartbeat_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Connection *c = userdata;
        uint64_t now = now_ns(CLOCK_MONOTONIC);

        if (now - c->last_input_ns >= c->heartbeat_timeout_ns) {
                LogFields f = { .machine_id = c->session->machine->id,
                                .ratelimit = &c->session->machine->log_ratelimit };
                log_emit(
                        LOG_WARNING,
                        0,
                        &f,
                        "No whole message from machine %s for %.1f s, closing %s.",
                        c->session->machine->id,
                        (double) (now - c->last_input_ns) / NSEC_PER_SEC,
                        c->peer);
                connection_close(c, CLOSE_HEARTBEAT_TIMEOUT);
                return 0;
        }
        (void) sd_event_source_set_time(s, (c->last_input_ns + c->heartbeat_timeout_ns) / NSEC_PER_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* After frames were processed: start probing once the Hello is through, schedule or send acks, write. */
static void connection_after_input(Connection *c) {
        Session *s = c->session;
        int r;

        if (s->state == SESSION_ACTIVE && !c->probe_timer) {
                /* The first probe goes out in the Welcome's write: the agent reads both at once and answers the
                 * probe ahead of its replayed backlog, so that a Ready in that backlog finds a clock sample (and
                 * the boot's mapping an error bound) when it is fixed. */
                if (!connection_queue_probe(c))
                        return;
                r = sd_event_add_time_relative(
                        c->event,
                        &c->probe_timer,
                        CLOCK_MONOTONIC,
                        CONNECTION_PROBE_BURST_INTERVAL_NS / NSEC_PER_USEC,
                        USEC_PER_MSEC,
                        on_probe_timer,
                        c);
                if (r < 0)
                        log_warning_errno(r, "Failed to start clock probes for %s: %m", c->peer);
        }

        if (c->closed)
                return;
        /* One write() of what this wakeup stored, before any sync is asked for it. */
        session_flush_writes(s);
        /* After a failed write: once the boot file can be written again, what it misses goes there, or, when
         * tetherd could not keep all of it, the agent is made to resend it (a new connection). */
        if (session_wants_resync(s)) {
                connection_close(c, CLOSE_RESYNC);
                return;
        }
        if (s->ack_urgent) {
                /* A Ready or Exit: its sync is asked for from the ack timer due now, which the loop dispatches
                 * after the raised-priority run that answers the waiters (the answer comes from memory and
                 * need not wait for the sync's submission either). */
                (void) sd_event_source_set_time_relative(c->ack_timer, 0);
                (void) sd_event_source_set_enabled(c->ack_timer, SD_EVENT_ONESHOT);
        } else if (s->ack_pending && s->unacked_bytes >= SESSION_ACK_BYTES) {
                if (!connection_check_queue_error(c, session_request_ack(s)))
                        return;
        } else if (s->ack_pending) {
                int enabled = SD_EVENT_OFF;
                (void) sd_event_source_get_enabled(c->ack_timer, &enabled);
                if (enabled == SD_EVENT_OFF) {
                        (void) sd_event_source_set_time_relative(c->ack_timer, c->ack_delay_ns / NSEC_PER_USEC);
                        (void) sd_event_source_set_enabled(c->ack_timer, SD_EVENT_ONESHOT);
                }
        }
        (void) connection_write(c);
}

/* Processes buffered frames and reads more, within this wakeup's budget. */
static void connection_pump(Connection *c) {
        Session *s = c->session;
        unsigned frames = 0;
        size_t bytes = 0;
        bool spent = false;
        int r;

        unsigned max_frames = c->bulk ? CONNECTION_FRAMES_PER_WAKEUP : CONNECTION_QUIET_FRAMES_PER_WAKEUP;
        size_t max_bytes = c->bulk ? CONNECTION_BYTES_PER_WAKEUP : CONNECTION_QUIET_BYTES_PER_WAKEUP;
        uint64_t start_ns = now_ns(CLOCK_MONOTONIC);

        for (;;) {
                /* A few frames at a time, the clock read between: a busy guest's turn also ends after
                 * CONNECTION_NS_PER_WAKEUP, however cheap its frames were expected to be, so that a quiet
                 * guest's Ready never waits behind more than that. */
                r = session_process(s, MIN(max_frames - frames, CONNECTION_FRAMES_PER_CLOCK_READ));
                if (r < 0) {
                        if (r == -EPROTO) {
                                /* The session logged and counted it. Try to deliver acks of what was stored. */
                                connection_close(c, CLOSE_PROTOCOL_ERROR);
                        } else {
                                log_error_errno(r, "Failed to process data from %s: %m", c->peer);
                                connection_close(c, CLOSE_IO_ERROR);
                        }
                        return;
                }
                frames += (unsigned) r;
                if (r > 0)
                        /* Liveness is a whole message, not a byte: a guest that trickles one frame (a byte every
                         * 10 ms, its Hello or any other) is as silent as one that sends nothing. */
                        c->last_input_ns = now_ns(CLOCK_MONOTONIC);
                if (session_answered(s)) {
                        /* A Ready or an Exit set the machine's state: end this wakeup so that the loop sends the
                         * answers next (the API's kicked daemons outrank everything), and go on from the turn,
                         * with that record's remaining work first. Writing the stored records and asking for
                         * their ack wait for the turn too. */
                        (void) sd_event_source_set_enabled(c->turn, SD_EVENT_ONESHOT);
                        return;
                }
                if (frames >= max_frames || bytes >= max_bytes ||
                    (r > 0 && now_ns(CLOCK_MONOTONIC) - start_ns >= CONNECTION_NS_PER_WAKEUP)) {
                        spent = true;
                        break;
                }
                if (c->eof)
                        break;

                r = frame_reader_fill(&s->reader, c->fd);
                if (r > 0) {
                        bytes += (size_t) r;
                        if (!c->bulk && frames == 0 && frame_reader_full(&s->reader)) {
                                /* A quiet guest's first read filled the buffer: a backlog, not a few records.
                                 * Busy at once, before any work: when a thousand guests start logging together,
                                 * each first quiet wakeup costs a read, not a read and 8 records stored, and a
                                 * quiet guest's Ready behind them waits that much less. */
                                spent = true;
                                break;
                        }
                        continue;
                }
                if (r == 0) {
                        c->eof = true;
                        continue; /* process what is buffered, then close below */
                }
                if (r == -EINTR)
                        continue;
                if (r == -EAGAIN)
                        break;
                if (r == -ENOBUFS) {
                        spent = true;
                        break;
                }
                log_debug_errno(r, "Failed to read from %s: %m", c->peer);
                connection_close(c, r == -ECONNRESET ? CLOSE_EOF : CLOSE_IO_ERROR);
                return;
        }

        connection_after_input(c);
        if (c->closed)
                return;

        if (spent) {
                c->last_spent_ns = now_ns(CLOCK_MONOTONIC);
                connection_set_bulk(c, true);
        } else if (
                c->bulk && frames < CONNECTION_QUIET_FRAMES_PER_WAKEUP &&
                now_ns(CLOCK_MONOTONIC) - c->last_spent_ns >= CONNECTION_QUIET_AFTER_NS)
                connection_set_bulk(c, false);
        if (spent || session_frame_ready(s)) {
                /* Budget spent, with frames left in the buffer or maybe bytes in the socket (no new edge will say
                 * so): continue in a later turn, after the others had theirs. */
                (void) sd_event_source_set_enabled(c->turn, SD_EVENT_ONESHOT);
                return;
        }
        if (c->eof)
                connection_close(c, CLOSE_EOF);
        else
                frame_reader_release(&s->reader); /* caught up: an idle guest holds no read buffer */
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Connection *c = userdata;

        if (revents & EPOLLOUT) {
                if (!connection_write(c))
                        return 0;
        }
        if (!c->closed && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                connection_pump(c);
        return 0;
}

static int on_turn(sd_event_source *src, uint64_t usec, void *userdata) {
        Connection *c = userdata;

        if (c->closed)
                c->on_close(c, c->close_reason, c->userdata); /* frees c */
        else
                connection_pump(c);
        return 0;
}

int connection_new(
        sd_event *e,
        int fd,
        const char *peer,
        const SessionContext *ctx,
        Machine *m,
        ConnectionCloseHandler on_close,
        void *userdata,
        Connection **ret) {
        int r;

        Connection *c = calloc(1, sizeof(Connection));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->event = sd_event_ref(e);
        c->fd = fd;
        c->on_close = on_close;
        c->userdata = userdata;
        c->last_input_ns = now_ns(CLOCK_MONOTONIC);
        c->heartbeat_timeout_ns = 3 * (uint64_t) ctx->heartbeat_interval_ms * NSEC_PER_MSEC +
                CONNECTION_HEARTBEAT_SLACK_NS;

        if (!(c->peer = strdup(peer))) {
                r = -ENOMEM;
                goto fail;
        }
        r = session_new(ctx, m, &c->session);
        if (r < 0)
                goto fail;
        c->session->on_ack = on_session_ack;
        c->session->on_ack_userdata = c;
        r = sd_event_add_io(e, &c->io, fd, CONNECTION_EPOLL_EVENTS, on_io, c);
        if (r < 0)
                goto fail;
        r = event_add_turn(e, &c->turn, on_turn, c);
        if (r < 0)
                goto fail;
        /* Accuracies are explicit everywhere: 0 would mean sd-event's default slack of 250 ms, which delays
         * acks (and so fills the agent's replay buffer) and clock probes. */
        c->ack_delay_ns = CONNECTION_ACK_DELAY_NS;
        r = sd_event_add_time_relative(
                e, &c->ack_timer, CLOCK_MONOTONIC, c->ack_delay_ns / NSEC_PER_USEC, USEC_PER_MSEC, on_ack_timer, c);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(c->ack_timer, SD_EVENT_OFF);
        r = sd_event_add_time_relative(
                e,
                &c->heartbeat_timer,
                CLOCK_MONOTONIC,
                c->heartbeat_timeout_ns / NSEC_PER_USEC,
                USEC_PER_SEC,
                on_heartbeat_timer,
                c);
        if (r < 0)
                goto fail;

        *ret = c;
        return 0;

fail:
        c->closed = true;
        connection_free(c, CLOSE_IO_ERROR);
        return r;
}

void connection_flush(Connection *c) {
        if (!c || c->closed)
                return;
        (void) session_flush_ack(c->session);
        (void) out_queue_flush(&c->session->out, c->fd);
}

Connection *connection_free(Connection *c, CloseReason reason) {
        if (!c)
                return NULL;
        if (c->session) {
                session_end(c->session, reason);
                session_free(c->session);
        }
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->turn);
        sd_event_source_disable_unref(c->ack_timer);
        sd_event_source_disable_unref(c->probe_timer);
        sd_event_source_disable_unref(c->heartbeat_timer);
        safe_close(c->fd);
        sd_event_unref(c->event);
        free(c->peer);
        free(c);
        return NULL;
}
