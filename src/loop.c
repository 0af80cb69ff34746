/* The event loop (loop.h): epoll for sockets, an eventfd for work posted by other threads, a
 * sorted list of timers.
 *
 * Written here rather than taken from a library: Debian's libevent or libuv would bring a
 * second event abstraction next to libmicrohttpd's and curl's, for about 200 lines of epoll
 * that only this process uses (a handful of timers, curl's sockets, one wake-up fd).
 *
 * A watch that ends while a batch of events is being handled stays allocated until the batch
 * is done (an event for it later in the same batch is dropped, never dispatched to freed
 * memory). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "houston_auth/loop.h"
#include "houston_auth/util.h"

#define MAX_EVENTS 64

struct ha_watch {
    int fd;
    ha_loop_fd_fn fn;
    void *arg;
    bool dead;
    struct ha_watch *next_dead;
};

struct post {
    ha_loop_fn fn;
    void *arg;
    struct post *next;
    bool embedded; /* the loop's own stop request: never freed */
};

struct stop_call {
    struct ha_loop *l;
    ha_loop_fn before;
    void *arg;
};

struct ha_loop {
    int epfd;
    int wakefd;
    struct ha_watch wake;    /* the eventfd's watch: marks its events */
    struct ha_timer *timers; /* armed, soonest first */
    struct ha_watch *graveyard;
    bool quit;
    /* Posted work, from any thread. */
    pthread_mutex_t lock;
    struct post *head, *tail;
    bool signalled; /* the eventfd holds a wake-up not yet read */
    bool stopping;  /* posts are refused */
    /* The thread. */
    pthread_t thread;
    bool started;
    /* Stopping needs no allocation, so it cannot fail for want of memory. */
    struct post stop_post;
    struct stop_call stop_call;
};

/* The loop whose ha_loop_run this thread is in: per thread, so asking needs no lock. */
static _Thread_local const struct ha_loop *current;

enum ha_err ha_loop_new(struct ha_loop **out)
{
    struct ha_loop *l = calloc(1, sizeof(*l));
    struct epoll_event ev = {0};

    if (l == NULL)
        return HA_ERR_NOMEM;
    pthread_mutex_init(&l->lock, NULL);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ev.events = EPOLLIN;
    ev.data.ptr = &l->wake;
    if (l->epfd < 0 || l->wakefd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) != 0) {
        ha_loop_free(l);
        return HA_ERR_IO;
    }
    *out = l;
    return HA_OK;
}

static void bury(struct ha_loop *l)
{
    while (l->graveyard != NULL) {
        struct ha_watch *w = l->graveyard;
        l->graveyard = w->next_dead;
        free(w);
    }
}

void ha_loop_free(struct ha_loop *l)
{
    if (l == NULL)
        return;
    bury(l);
    while (l->head != NULL) {
        struct post *p = l->head;
        l->head = p->next;
        if (!p->embedded)
            free(p);
    }
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wakefd >= 0)
        close(l->wakefd);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

bool ha_loop_in_thread(const struct ha_loop *l)
{
    return current == l;
}

/* Queues p (fn and arg set) and wakes the loop; HA_ERR_BUSY once the loop is stopping. */
static enum ha_err enqueue(struct ha_loop *l, struct post *p)
{
    enum ha_err err = HA_OK;
    uint64_t one = 1;

    p->next = NULL;
    pthread_mutex_lock(&l->lock);
    if (l->stopping) {
        err = HA_ERR_BUSY;
    } else {
        if (l->tail != NULL)
            l->tail->next = p;
        else
            l->head = p;
        l->tail = p;
        if (!l->signalled) {
            l->signalled = true;
            /* An eventfd write fails only on overflow, which one pending wake-up cannot reach. */
            (void)!write(l->wakefd, &one, sizeof(one));
        }
    }
    pthread_mutex_unlock(&l->lock);
    return err;
}

enum ha_err ha_loop_post(struct ha_loop *l, ha_loop_fn fn, void *arg)
{
    struct post *p = malloc(sizeof(*p));
    enum ha_err err;

    if (p == NULL)
        return HA_ERR_NOMEM;
    p->fn = fn;
    p->arg = arg;
    p->embedded = false;
    err = enqueue(l, p);
    if (err != HA_OK)
        free(p);
    return err;
}

static void run_posts(struct ha_loop *l)
{
    struct post *p;
    uint64_t n;

    pthread_mutex_lock(&l->lock);
    p = l->head;
    l->head = l->tail = NULL;
    l->signalled = false;
    (void)!read(l->wakefd, &n, sizeof(n));
    pthread_mutex_unlock(&l->lock);
    while (p != NULL) {
        struct post *next = p->next;
        bool embedded = p->embedded;
        p->fn(p->arg);
        if (!embedded)
            free(p);
        p = next;
    }
}

void ha_loop_timer_cancel(struct ha_loop *l, struct ha_timer *t)
{
    if (!t->armed)
        return;
    for (struct ha_timer **p = &l->timers; *p != NULL; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    t->armed = false;
    t->next = NULL;
}

void ha_loop_timer_arm(struct ha_loop *l, struct ha_timer *t, long delay_ms, ha_loop_fn fn,
                       void *arg)
{
    struct ha_timer **p = &l->timers;

    ha_loop_timer_cancel(l, t);
    t->due_ns = ha_mono_ns() + (uint64_t)(delay_ms < 0 ? 0 : delay_ms) * 1000000u;
    t->fn = fn;
    t->arg = arg;
    while (*p != NULL && (*p)->due_ns <= t->due_ns)
        p = &(*p)->next;
    t->next = *p;
    *p = t;
    t->armed = true;
}

/* Milliseconds until the soonest timer (rounded up), or -1 when none. */
static int next_timeout(const struct ha_loop *l)
{
    uint64_t now = ha_mono_ns(), ms;
    if (l->timers == NULL)
        return -1;
    if (l->timers->due_ns <= now)
        return 0;
    ms = (l->timers->due_ns - now + 999999u) / 1000000u;
    return ms > 60000 ? 60000 : (int)ms;
}

static void run_timers(struct ha_loop *l)
{
    uint64_t now = ha_mono_ns();
    /* Each runs once; one that re-arms itself for now waits for the next turn. */
    while (l->timers != NULL && l->timers->due_ns <= now && !l->quit) {
        struct ha_timer *t = l->timers;
        l->timers = t->next;
        t->armed = false;
        t->next = NULL;
        t->fn(t->arg);
    }
}

static uint32_t to_epoll(unsigned events)
{
    return ((events & HA_LOOP_IN) ? EPOLLIN : 0u) | ((events & HA_LOOP_OUT) ? EPOLLOUT : 0u);
}

enum ha_err ha_loop_watch(struct ha_loop *l, int fd, unsigned events, ha_loop_fd_fn fn, void *arg,
                          struct ha_watch **out)
{
    struct ha_watch *w = calloc(1, sizeof(*w));
    struct epoll_event ev = {0};

    if (w == NULL)
        return HA_ERR_NOMEM;
    w->fd = fd;
    w->fn = fn;
    w->arg = arg;
    ev.events = to_epoll(events);
    ev.data.ptr = w;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(w);
        return errno == ENOMEM ? HA_ERR_NOMEM : HA_ERR_IO;
    }
    *out = w;
    return HA_OK;
}

enum ha_err ha_loop_watch_set(struct ha_loop *l, struct ha_watch *w, unsigned events)
{
    struct epoll_event ev = {0};
    ev.events = to_epoll(events);
    ev.data.ptr = w;
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) == 0 ? HA_OK : HA_ERR_IO;
}

void ha_loop_unwatch(struct ha_loop *l, struct ha_watch *w)
{
    if (w == NULL)
        return;
    /* Fails only when fd was closed already, which took it out of the set anyway. */
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->dead = true;
    w->next_dead = l->graveyard;
    l->graveyard = w;
}

static void dispatch(struct ha_loop *l, const struct epoll_event *ev)
{
    struct ha_watch *w = ev->data.ptr;
    unsigned ready = 0;

    if (w == &l->wake) {
        run_posts(l);
        return;
    }
    if (w->dead)
        return;
    if (ev->events & EPOLLIN)
        ready |= HA_LOOP_IN;
    if (ev->events & EPOLLOUT)
        ready |= HA_LOOP_OUT;
    if (ev->events & (EPOLLERR | EPOLLHUP))
        ready |= HA_LOOP_ERR;
    w->fn(w->arg, w->fd, ready);
}

void ha_loop_run(struct ha_loop *l)
{
    struct epoll_event evs[MAX_EVENTS];

    current = l;
    l->quit = false;
    while (!l->quit) {
        int n = epoll_wait(l->epfd, evs, MAX_EVENTS, next_timeout(l));
        for (int i = 0; i < n && !l->quit; i++)
            dispatch(l, &evs[i]);
        bury(l);
        run_timers(l);
        bury(l);
    }
    current = NULL;
}

void ha_loop_quit(struct ha_loop *l)
{
    l->quit = true;
}

static void *thread_main(void *arg)
{
    ha_loop_run(arg);
    return NULL;
}

enum ha_err ha_loop_start(struct ha_loop *l)
{
    if (pthread_create(&l->thread, NULL, thread_main, l) != 0)
        return HA_ERR_NOMEM;
    l->started = true;
    return HA_OK;
}

/* On the loop thread: refuse new posts, end what is in flight, then quit. */
static void stop_here(void *arg)
{
    struct stop_call *s = arg;
    pthread_mutex_lock(&s->l->lock);
    s->l->stopping = true;
    pthread_mutex_unlock(&s->l->lock);
    if (s->before != NULL)
        s->before(s->arg);
    /* Work posted before stopping was refused still runs, so nothing posted is lost. */
    run_posts(s->l);
    ha_loop_quit(s->l);
}

void ha_loop_stop(struct ha_loop *l, ha_loop_fn before_stop, void *arg)
{
    if (!l->started)
        return;
    l->stop_call = (struct stop_call){l, before_stop, arg};
    l->stop_post = (struct post){stop_here, &l->stop_call, NULL, true};
    /* Refused only when a stop already runs on the loop, which then quits as well. */
    (void)enqueue(l, &l->stop_post);
    pthread_join(l->thread, NULL);
    l->started = false;
}
