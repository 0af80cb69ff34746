/* The event loop: one thread that waits on epoll for the sockets of every outbound call
 * (http_client.c registers curl's), runs timers (discovery and JWKS refresh, the slow-client
 * watchdog, each call's deadline), and runs work posted from other threads (the I/O threads
 * hand it logins). Nothing on the loop blocks: a slow peer costs a socket and a few buffers,
 * never a thread.
 *
 * Threads: ha_loop_post and ha_loop_stop may be called from any thread; everything else only
 * from the loop's own thread (a posted function, a timer, an fd callback), or before
 * ha_loop_start / after ha_loop_stop. */
#ifndef HOUSTON_AUTH_LOOP_H
#define HOUSTON_AUTH_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include "houston_auth/err.h"

struct ha_loop;
typedef void (*ha_loop_fn)(void *arg);
/* events: HA_LOOP_IN and/or HA_LOOP_OUT that are ready (HA_LOOP_ERR on error or hang-up). */
typedef void (*ha_loop_fd_fn)(void *arg, int fd, unsigned events);

#define HA_LOOP_IN 1u
#define HA_LOOP_OUT 2u
#define HA_LOOP_ERR 4u

/* A timer: caller-owned storage, armed at most once at a time. */
struct ha_timer {
    uint64_t due_ns; /* ha_mono_ns() at which it fires */
    ha_loop_fn fn;
    void *arg;
    bool armed;
    struct ha_timer *next;
};

enum ha_err ha_loop_new(struct ha_loop **out);
/* The loop must be stopped (or never started). Posted work never run is dropped. */
void ha_loop_free(struct ha_loop *l);
/* Starts the loop's thread. */
enum ha_err ha_loop_start(struct ha_loop *l);
/* Runs before_stop(arg) on the loop thread (when non-NULL: it ends what is in flight), then
 * stops the thread and joins it. Any thread but the loop's; a no-op when not running. */
void ha_loop_stop(struct ha_loop *l, ha_loop_fn before_stop, void *arg);
/* True on the loop's thread. */
bool ha_loop_in_thread(const struct ha_loop *l);
/* Runs fn(arg) on the loop thread, soon, in posting order. Any thread. HA_ERR_NOMEM, or
 * HA_ERR_BUSY when the loop is stopping: then fn will not run. */
enum ha_err ha_loop_post(struct ha_loop *l, ha_loop_fn fn, void *arg);

/* Arms t to run fn(arg) once, delay_ms from now (re-arms it when armed). */
void ha_loop_timer_arm(struct ha_loop *l, struct ha_timer *t, long delay_ms, ha_loop_fn fn,
                       void *arg);
void ha_loop_timer_cancel(struct ha_loop *l, struct ha_timer *t);

/* Watches fd for events (HA_LOOP_IN|HA_LOOP_OUT): fn(arg, fd, ready) runs on the loop thread
 * while the watch lasts. *w is the loop's; NULL on failure. */
struct ha_watch;
enum ha_err ha_loop_watch(struct ha_loop *l, int fd, unsigned events, ha_loop_fd_fn fn, void *arg,
                          struct ha_watch **w);
/* Changes the events a watch waits for. */
enum ha_err ha_loop_watch_set(struct ha_loop *l, struct ha_watch *w, unsigned events);
/* Ends a watch (before fd is closed); an event already fetched for it is dropped, and its
 * memory is freed once the current batch of events is done. */
void ha_loop_unwatch(struct ha_loop *l, struct ha_watch *w);

/* Runs the loop on the calling thread until ha_loop_quit (tests: no extra thread). */
void ha_loop_run(struct ha_loop *l);
/* Makes ha_loop_run return after the current callback. Loop thread. */
void ha_loop_quit(struct ha_loop *l);

#endif
