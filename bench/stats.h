/* Figures over samples, shared by the benchmark programs. */
#ifndef HOUSTON_AUTH_BENCH_STATS_H
#define HOUSTON_AUTH_BENCH_STATS_H

/* Sorts n values in place, ascending. */
void bench_sort(double *v, long n);
/* The q-quantile (0..1) of n sorted values, nearest rank; 0 when there are none. */
double bench_pct(const double *v, long n, double q);

#endif
