/* threads.c: one OpenMP pool, one thread per physical core, pinned.
 *
 * OpenMP regions, oneDNN and the OpenMP build of OpenBLAS all run on this
 * pool (a library called inside a parallel region runs single-threaded), so
 * threads never multiply.  Pinning keeps each thread on its core's caches;
 * ROSA_NO_PIN=1 leaves placement to the kernel (better when the machine is
 * shared with other heavy processes). */
#include <cblas.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rosa.h"

#define MAX_CPUS 1024

/* One logical CPU per physical core (the first of each core's siblings),
 * among the CPUs this process may run on.  Returns their count. */
static int physical_cpus(int *cpus) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 0;
    int n = 0;
    for (int c = 0; c < MAX_CPUS && c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &allowed)) continue;
        char path[128], buf[256];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", c);
        FILE *f = fopen(path, "r");
        int first = c;
        if (f) {
            if (fgets(buf, sizeof buf, f)) first = atoi(buf); /* "0,56" or "0-1": the first sibling */
            fclose(f);
        }
        if (first == c) cpus[n++] = c;
    }
    return n;
}

void rosa_set_threads(int n) {
    static int cpus[MAX_CPUS];
    int ncpu = physical_cpus(cpus);
    if (n <= 0) n = ncpu > 0 ? ncpu : omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    const char *nopin = getenv("ROSA_NO_PIN");
    if (ncpu <= 0 || n > ncpu || (nopin && strcmp(nopin, "0") != 0)) return;
#pragma omp parallel num_threads(n)
    {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpus[omp_get_thread_num()], &set);
        sched_setaffinity(0, sizeof set, &set); /* 0: the calling thread */
    }
}

int rosa_get_threads(void) { return omp_get_max_threads(); }
