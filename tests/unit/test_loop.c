/* The event loop on its own: timers fire in due order and once, a cancelled timer never
 * fires, work posted from other threads runs on the loop's thread in posting order, a stop
 * runs its before_stop and what was posted before it, refuses what comes after, and needs no
 * allocation; fd watches report readiness and may end themselves (and another watch of the
 * same batch) from their callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include "houston_auth/loop.h"
#include "houston_auth/util.h"

/* ---- timers, run on this thread with ha_loop_run ---- */

struct order {
    struct ha_loop *l;
    int seen[8];
    int n;
    int quit_after;
};

struct tick {
    struct order *o;
    int id;
};

static void on_tick(void *arg)
{
    struct tick *t = arg;
    t->o->seen[t->o->n++] = t->id;
    if (t->o->n == t->o->quit_after)
        ha_loop_quit(t->o->l);
}

static void test_timers_fire_in_due_order_once(void **state)
{
    struct ha_loop *l = NULL;
    struct order o = {0};
    struct ha_timer t[4];
    struct tick k[4];
    struct ha_timer guard;
    struct tick kg;
    uint64_t t0 = ha_mono_ns();
    (void)state;

    assert_int_equal(ha_loop_new(&l), HA_OK);
    memset(t, 0, sizeof(t));
    memset(&guard, 0, sizeof(guard));
    o.l = l;
    o.quit_after = 3;
    for (int i = 0; i < 4; i++)
        k[i] = (struct tick){&o, i};
    ha_loop_timer_arm(l, &t[0], 60, on_tick, &k[0]);
    ha_loop_timer_arm(l, &t[1], 20, on_tick, &k[1]);
    ha_loop_timer_arm(l, &t[2], 40, on_tick, &k[2]);
    ha_loop_timer_arm(l, &t[3], 10, on_tick, &k[3]);
    ha_loop_timer_cancel(l, &t[3]);                 /* never fires */
    ha_loop_timer_arm(l, &t[2], 5, on_tick, &k[2]); /* re-armed: now first */
    /* A guard ends the run if the loop misbehaves (bounded test). */
    kg = (struct tick){&o, 99};
    ha_loop_timer_arm(l, &guard, 2000, on_tick, &kg);
    ha_loop_run(l);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.seen[0], 2);
    assert_int_equal(o.seen[1], 1);
    assert_int_equal(o.seen[2], 0);
    assert_false(t[0].armed || t[1].armed || t[2].armed || t[3].armed);
    assert_true(ha_mono_ns() - t0 >= 60u * 1000000u); /* none fired early */
    ha_loop_timer_cancel(l, &guard);
    ha_loop_free(l);
}

/* ---- posts and stop, with the loop's own thread ---- */

struct posts {
    struct ha_loop *l;
    int order[64];
    atomic_int n;
    atomic_bool wrong_thread;
    atomic_bool before_ran;
};

struct post_arg {
    struct posts *p;
    int id;
};

static void on_post(void *arg)
{
    struct post_arg *a = arg;
    if (!ha_loop_in_thread(a->p->l))
        atomic_store(&a->p->wrong_thread, true);
    a->p->order[atomic_fetch_add(&a->p->n, 1)] = a->id;
}

static void before_stop(void *arg)
{
    struct posts *p = arg;
    if (!ha_loop_in_thread(p->l))
        atomic_store(&p->wrong_thread, true);
    atomic_store(&p->before_ran, true);
}

struct poster {
    struct posts *p;
    struct post_arg args[16];
    int base;
    int refused; /* checked on the main thread: cmocka asserts only there */
};

static void *post_many(void *arg)
{
    struct poster *ps = arg;
    for (int i = 0; i < 16; i++) {
        ps->args[i] = (struct post_arg){ps->p, ps->base + i};
        if (ha_loop_post(ps->p->l, on_post, &ps->args[i]) != HA_OK)
            ps->refused++;
    }
    return NULL;
}

static void test_posts_and_stop(void **state)
{
    struct ha_loop *l = NULL;
    struct posts p;
    struct poster ps[2];
    pthread_t th[2];
    struct post_arg late;
    int last[2] = {-1, -1};
    (void)state;

    memset(&p, 0, sizeof(p));
    memset(ps, 0, sizeof(ps));
    assert_int_equal(ha_loop_new(&l), HA_OK);
    p.l = l;
    assert_false(ha_loop_in_thread(l));
    assert_int_equal(ha_loop_start(l), HA_OK);
    for (int i = 0; i < 2; i++) {
        ps[i].p = &p;
        ps[i].base = i * 100;
        assert_int_equal(pthread_create(&th[i], NULL, post_many, &ps[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ps[i].refused, 0);
    }
    ha_loop_stop(l, before_stop, &p);
    /* Everything posted before the stop ran, on the loop's thread, each poster's in order. */
    assert_int_equal(atomic_load(&p.n), 32);
    assert_false(atomic_load(&p.wrong_thread));
    assert_true(atomic_load(&p.before_ran));
    for (int i = 0; i < 32; i++) {
        int who = p.order[i] / 100, seq = p.order[i] % 100;
        assert_true(seq > last[who]);
        last[who] = seq;
    }
    /* After the stop: refused, never run. */
    late = (struct post_arg){&p, 999};
    assert_int_equal(ha_loop_post(l, on_post, &late), HA_ERR_BUSY);
    assert_int_equal(atomic_load(&p.n), 32);
    ha_loop_stop(l, before_stop, &p); /* a no-op once stopped */
    ha_loop_free(l);
}

/* ---- fd watches ---- */

struct pipes {
    struct ha_loop *l;
    int fds[2][2];
    struct ha_watch *w[2];
    int events[2];
};

static void on_readable(void *arg, int fd, unsigned ready)
{
    struct pipes *p = arg;
    int i = fd == p->fds[0][0] ? 0 : 1;
    char c;
    assert_true(ready & HA_LOOP_IN);
    assert_int_equal(read(fd, &c, 1), 1);
    p->events[i]++;
    /* The first to fire ends both watches; the other's event of this batch is dropped. */
    ha_loop_unwatch(p->l, p->w[0]);
    ha_loop_unwatch(p->l, p->w[1]);
    p->w[0] = p->w[1] = NULL;
}

static void quit_loop(void *arg)
{
    ha_loop_quit(arg);
}

static void test_watch_and_unwatch_in_callback(void **state)
{
    struct pipes p;
    struct ha_timer end;
    (void)state;
    memset(&end, 0, sizeof(end));
    memset(&p, 0, sizeof(p));
    assert_int_equal(ha_loop_new(&p.l), HA_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe(p.fds[i]), 0);
        assert_int_equal(ha_loop_watch(p.l, p.fds[i][0], HA_LOOP_IN, on_readable, &p, &p.w[i]),
                         HA_OK);
        assert_int_equal(write(p.fds[i][1], "x", 1), 1);
    }
    /* The loop runs on after the callbacks (a quit would end the batch early). */
    ha_loop_timer_arm(p.l, &end, 100, quit_loop, p.l);
    ha_loop_run(p.l);
    assert_int_equal(p.events[0] + p.events[1], 1);
    for (int i = 0; i < 2; i++) {
        close(p.fds[i][0]);
        close(p.fds[i][1]);
    }
    ha_loop_free(p.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_due_order_once),
        cmocka_unit_test(test_posts_and_stop),
        cmocka_unit_test(test_watch_and_unwatch_in_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
