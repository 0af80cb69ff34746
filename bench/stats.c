/* Figures over samples, shared by the benchmark programs (one copy instead of one each). */
#include <stdlib.h>
#include "stats.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

void bench_sort(double *v, long n)
{
    if (n > 1)
        qsort(v, (size_t)n, sizeof(*v), cmp_double);
}

double bench_pct(const double *v, long n, double q)
{
    long i;
    if (n == 0)
        return 0;
    i = (long)(q * (double)n + 0.999999) - 1;
    return v[i < 0 ? 0 : (i >= n ? n - 1 : i)];
}
